"""Test helpers shared by every layer: reaching real services, generating and inspecting media."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from video2mp3.converter.media import find_ffmpeg

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


def need(service: str, probe: Callable[[], object], hint: str) -> None:
    """Fail under CI, skip elsewhere, when ``service`` does not answer ``probe``."""
    try:
        probe()
    except Exception as exc:
        message = f"{service} is not reachable ({exc!r}); {hint}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def missing(what: str) -> None:
    """A ``need`` probe for a tool that is not installed."""
    raise FileNotFoundError(f"{what} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last_error!r})")


# --- media --------------------------------------------------------------------------------------

FFMPEG = find_ffmpeg()


@dataclass(frozen=True)
class Sample:
    """A generated input and what a correct conversion of it looks like."""

    name: str
    args: tuple[str, ...]  # ffmpeg output options
    audio_seconds: float | None  # None: no audio at all
    error_code: str | None = None


VIDEO = ("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15:duration=3")
H264 = ("-c:v", "libx264", "-preset", "ultrafast")
AAC = ("-c:a", "aac")
MP3 = ("-c:a", "libmp3lame")
QCIF = ("-f", "lavfi", "-i", "testsrc2=size=176x144:rate=15:duration=3")  # what H.263 allows


def tone(seconds: float = 3, layout: str = "stereo", rate: int = 44100) -> tuple[str, ...]:
    return (
        "-f",
        "lavfi",
        "-i",
        f"sine=f=440:d={seconds}:r={rate},aformat=channel_layouts={layout}",
    )


SAMPLES = {
    s.name: s
    for s in (
        Sample(
            "h264_aac.mp4",
            (
                *VIDEO,
                *tone(),
                *H264,
                "-c:a",
                "aac",
                "-shortest",
                "-movflags",
                "+faststart",
            ),
            3.0,
        ),
        Sample(
            "moov_at_end.mp4",
            (
                *VIDEO,
                *tone(),
                *H264,
                "-c:a",
                "aac",
                "-shortest",
            ),
            3.0,
        ),
        Sample(
            "vp9_opus.webm",
            (
                *VIDEO,
                *tone(rate=48000),
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-c:a",
                "libopus",
                "-shortest",
            ),
            3.0,
        ),
        Sample(
            "surround_5_1.mkv",
            (
                *VIDEO,
                *tone(layout="5.1", rate=48000),
                *H264,
                "-c:a",
                "aac",
                "-shortest",
            ),
            3.0,
        ),
        Sample("no_audio.mp4", (*VIDEO, *H264), None, "no_audio"),
        # More containers and audio layouts, converted by the integration tests.
        Sample("mpeg4_mp3.avi", (*VIDEO, *tone(), "-c:v", "mpeg4", *MP3, "-shortest"), 3.0),
        Sample("flv1_mp3.flv", (*VIDEO, *tone(), "-c:v", "flv", *MP3, "-shortest"), 3.0),
        Sample("h264_aac.mov", (*VIDEO, *tone(layout="mono"), *H264, *AAC, "-shortest"), 3.0),
        Sample(
            "h263_aac.3gp",
            (*QCIF, *tone(layout="mono", rate=16000), "-c:v", "h263", *AAC, "-shortest"),
            3.0,
        ),
        Sample(
            "theora_vorbis.ogv",
            (*VIDEO, *tone(), "-c:v", "libtheora", "-c:a", "libvorbis", "-shortest"),
            3.0,
        ),
        Sample(
            "wmv2_wma.wmv", (*VIDEO, *tone(), "-c:v", "wmv2", "-c:a", "wmav2", "-shortest"), 3.0
        ),
        Sample(
            "pcm_96k.mkv", (*VIDEO, *tone(rate=96000), *H264, "-c:a", "pcm_s24le", "-shortest"), 3.0
        ),
    )
}


# An hour of mono noise (11 MB): ffmpeg takes seconds on it, time enough to kill a converter.
LONG = Sample(
    "long_mono.m4a",
    (
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=d=3600:r=16000:a=0.3",
        "-ac",
        "1",
        "-c:a",
        "aac",
        "-b:a",
        "24k",
    ),
    3600.0,
)


def make_sample(sample: Sample, folder: Path) -> Path:
    path = folder / sample.name
    if not path.exists():
        subprocess.run(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *sample.args, str(path)],
            check=True,
            timeout=120,
        )
    return path


@dataclass(frozen=True)
class AudioFacts:
    format: str
    codec: str
    channels: int
    duration: float


def inspect_audio(path: Path) -> AudioFacts:
    """What libavformat (the library behind ffprobe) reads from ``path``."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return AudioFacts(
            format=container.format.name,
            codec=stream.codec_context.codec.canonical_name,
            channels=stream.codec_context.channels,
            duration=container.duration / 1_000_000,
        )
