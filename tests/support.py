"""Test helpers shared by every layer: reaching real services, generating and inspecting media,
receiving webhooks."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from video2mp3.converter.binary import choose_ffmpeg

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


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl`` (the broker's own view of connections and queues); its output."""
    found = shutil.which("rabbitmqctl")
    need("rabbitmqctl", lambda: found or missing("rabbitmqctl"), "install rabbitmq-server")
    run = [str(found), *args]
    return subprocess.run(run, check=True, capture_output=True, text=True, timeout=60).stdout


def delete_topology(amqp_url: str, prefix: str) -> None:
    """Delete the exchanges and queues a bus declared under ``prefix``."""
    import pika

    from video2mp3.ports.bus import QUEUES

    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        for queue in [*QUEUES, "dead"]:
            channel.queue_delete(f"{prefix}.{queue}")
        channel.exchange_delete(prefix)
        channel.exchange_delete(f"{prefix}.dlx")


def queue_messages(prefix: str) -> dict[str, int]:
    """Messages in each queue named ``prefix.*``, ready and unacknowledged alike."""
    listed = rabbitmqctl("list_queues", "name", "messages", "-q", "--no-table-headers")
    rows = (line.split("\t") for line in listed.splitlines())
    return {name: int(count) for name, count in rows if name.startswith(f"{prefix}.")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss(pid: int) -> int:
    """Resident memory of process ``pid`` and its children (gunicorn's workers), in bytes."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid, *map(int, children.read_text().split())] if children.exists() else [pid]
    return sum(_rss(p) for p in pids)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


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

# The ffmpeg the converter would choose here: VIDEO2MP3_FFMPEG picks another for a whole run.
FFMPEG = choose_ffmpeg(os.environ.get("VIDEO2MP3_FFMPEG")).path
# The samples are made by the pinned static build when it is installed: it has every encoder
# they need (a distribution's ffmpeg may lack one, AMR-NB's say), while the converter under
# test still reads them with FFMPEG.
try:
    import imageio_ffmpeg

    MAKER = imageio_ffmpeg.get_ffmpeg_exe()
except ImportError:
    MAKER = FFMPEG


@contextmanager
def dev_stack(data: Path, log: Path, **settings: str) -> Iterator[str]:
    """``video2mp3 dev`` on a free port, its data under ``data``, ``settings`` (``VIDEO2MP3_*``
    variables) in its environment; yields its base URL and checks that it stops cleanly."""
    port = free_port()
    with log.open("wb") as out:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", "dev", "--port", str(port), "--data-dir", data],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **settings},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, 60, "the dev stack")
        yield base
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, log.read_text()[-3000:]


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
FASTSTART = ("-movflags", "+faststart")
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


def sound(seconds: float = 3, layout: str = "stereo", rate: int = 44100) -> tuple[str, ...]:
    """A generated audio input like ``tone``, but of noise, which no encoder can flatter."""
    return (
        "-f",
        "lavfi",
        "-i",
        f"anoisesrc=d={seconds}:r={rate}:a=0.2,aformat=channel_layouts={layout}",
    )


def clip(seconds: float = 3) -> tuple[str, ...]:
    return ("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=15:duration={seconds}")


# The edge cases real files bring: rates, layouts, codecs, timings and containers. The expected
# seconds are those of the audio stream the converter picks.
# Valid files that some PyAV release dies on (a signal): 17.0 on MPEG-PS with MP2 audio, 17.1
# to 18.1 on channels in an order of their own. The converter's ffmpeg reads them instead.
PYAV_DIES_ON = frozenset({"mp2.mpg", "pcm_8ch_custom_order.mov"})
# What field recorders and broadcast cameras write: 24-bit PCM at 96 kHz, many channels.
SURROUND = {
    "pcm_6ch": "aformat=channel_layouts=6c",
    "pcm_8ch": "aformat=channel_layouts=8c",
    "pcm_16ch": "aformat=channel_layouts=16c",
    "pcm_5.1_side": "aformat=channel_layouts=5.1(side)",
    "pcm_7.1_wide": "aformat=channel_layouts=7.1(wide)",
    # AmbiX B-format as a 360° camera or recorder writes it: these containers keep no
    # ambisonic label, so it reads as four channels.
    "pcm_ambix_4ch": "pan=4c|c0=c0|c1=c0|c2=c0|c3=c0",
}
# Many channels with no names (Matroska stores none): ffmpeg 5.1 knows no layout of 10, 12, 14.
UNNAMED = {
    f"pcm_{count}ch_unnamed.mkv": f"aformat=channel_layouts={count}c" for count in (10, 12, 14)
}
# Ambisonic sound as it is labelled: Opus, channel mapping family 2 (a head-locked stereo pair
# may follow the B-format channels).
AMBISONIC = {
    "opus_ambisonic_1.mkv": "pan=4c|c0=c0|c1=0.5*c0|c2=0.2*c0|c3=0.1*c0",
    "opus_ambisonic_1_stereo.ogg": "pan=6c|c0=c0|c1=0.5*c0|c2=0.2*c0|c3=0.1*c0|c4=c0|c5=c0",
}


def surround(layout: str, seconds: float = 3) -> tuple[str, ...]:
    """A tone at 96 kHz in the channels of ``layout``, an audio filter."""
    return ("-f", "lavfi", "-i", f"sine=f=440:d={seconds}:r=96000,{layout}")


CORPUS = {
    s.name: s
    for s in (
        Sample("pcm_u8_11k.wav", (*tone(layout="mono", rate=11025), "-c:a", "pcm_u8"), 3.0),
        Sample("pcm_s24_32k.wav", (*tone(rate=32000), "-c:a", "pcm_s24le"), 3.0),
        Sample("adpcm_ms_22k.wav", (*tone(rate=22050), "-c:a", "adpcm_ms"), 3.0),
        Sample(
            "amr_nb_8k.3gp",
            (*QCIF, *tone(layout="mono", rate=8000), "-c:v", "h263",
             "-c:a", "libopencore_amrnb", "-b:a", "12.2k", "-shortest"),
            3.0,
        ),
        Sample("mp2.mpg", (*VIDEO, *tone(rate=48000), "-c:v", "mpeg2video", "-c:a", "mp2",
                           "-shortest"), 3.0),
        Sample("ac3_5_1.mkv", (*VIDEO, *tone(layout="5.1", rate=48000), *H264, "-c:a", "ac3",
                               "-shortest"), 3.0),
        Sample("flac_88k.mkv", (*VIDEO, *tone(rate=88200), *H264, "-c:a", "flac", "-shortest"),
               3.0),
        Sample("alac.mov", (*tone(rate=48000), "-c:a", "alac"), 3.0),
        Sample("aac_7_1.mkv", (*VIDEO, *tone(layout="7.1", rate=48000), *H264, *AAC,
                               "-shortest"), 3.0),
        Sample("vorbis_mono_16k.ogg", (*tone(layout="mono", rate=16000), "-c:a", "libvorbis"),
               3.0),
        Sample("opus_mono.webm", (*tone(layout="mono", rate=48000), "-c:a", "libopus"), 3.0),
        Sample("late_audio.mp4", (*clip(3), "-itsoffset", "1", *tone(2), *H264, *AAC), 2.0),
        Sample("audio_shorter.mp4", (*clip(3), *tone(2), *H264, *AAC, *FASTSTART), 2.0),
        Sample("audio_shorter.mkv", (*clip(3), *tone(2), *H264, *AAC), 2.0),
        Sample("audio_longer.mp4", (*clip(1.5), *tone(3), *H264, *AAC), 3.0),
        Sample(
            "vfr.mp4",
            (*clip(3), *tone(3), "-vf", r"select=lt(n\,10)+not(mod(n\,4))",
             "-fps_mode", "vfr", *H264, *AAC),
            3.0,
        ),
        Sample("fragmented.mp4", (*VIDEO, *tone(), *H264, *AAC, "-shortest",
                                  "-movflags", "+frag_keyframe+empty_moov"), 3.0),
        Sample(
            "vbr_silent_start_no_header.mp3",  # its length guessed from the bitrate: 18 s
            ("-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo:d=3", *sound(3),
             "-filter_complex", "[0][1]concat=n=2:v=0:a=1", *MP3, "-q:a", "0",
             "-write_xing", "0"),
            6.0,
        ),
        Sample("h264_aac.ts", (*VIDEO, *tone(), *H264, *AAC, "-shortest"), 3.0),
        *(
            Sample(f"{name}.{container}", (*surround(layout), "-c:a", "pcm_s24le"), 3.0)
            for name, layout in SURROUND.items()
            for container in ("mov", "mkv", "wav")
        ),
        *(
            Sample(name, (*surround(layout), "-c:a", "pcm_s24le"), 3.0)
            for name, layout in UNNAMED.items()
        ),
        *(
            Sample(name, ("-f", "lavfi", "-i", f"sine=f=440:d=3:r=48000,{layout}",
                          "-c:a", "libopus", "-mapping_family", "2"), 3.0)
            for name, layout in AMBISONIC.items()
        ),
        # Channels in an order of their own (what Debian's ffmpeg 5.1 writes for 8-channel PCM):
        # PyAV 17.1 to 18.1 abort on the layout.
        Sample("pcm_8ch_custom_order.mov", (*surround(
            "pan=FL+FR+FC+LFE+SL+SR+BL+BR|" + "|".join(f"c{n}=c0" for n in range(8))),
            "-c:a", "pcm_s24le"), 3.0),
        Sample(
            "two_languages.mkv",
            (*VIDEO, *tone(2), *tone(3, rate=48000), "-map", "0:v", "-map", "1:a", "-map", "2:a",
             *H264, *AAC, "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre",
             "-disposition:a:0", "0", "-disposition:a:1", "default"),
            3.0,  # the French track: the one marked default
        ),
    )
}  # fmt: skip


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
            [MAKER, "-hide_banner", "-loglevel", "error", "-y", *sample.args, str(path)],
            check=True,
            timeout=120,
        )
    return path


_CHOOSE = """
import sys, av
with av.open(sys.argv[1]) as container:
    streams, track = container.streams.audio, int(sys.argv[2])
    default = [s for s in streams if s.disposition & s.disposition.default]
    stream = streams[track] if track >= 0 else (default or list(streams))[0]
    print(stream.index, stream.sample_rate)
"""


def decoded_seconds(path: Path, track: int = -1) -> float:
    """Seconds of audio that decoding ``path``'s audio stream gives (by default the one marked
    default, else the first), counted in samples. PyAV chooses the stream, in a process of its
    own, and ffmpeg decodes: some PyAV releases die on some valid files (``converter.report``)."""
    chosen = subprocess.run([sys.executable, "-c", _CHOOSE, str(path), str(track)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert chosen.returncode == 0, f"PyAV could not open {path.name}: {chosen.stderr[-500:]}"
    index, rate = map(int, chosen.stdout.split())
    # The first channel only: a downmix would refuse some layouts (ambisonic, say).
    decode = [MAKER, "-v", "error", "-i", str(path), "-map", f"0:{index}", "-af", "pan=mono|c0=c0",
              "-f", "s16le", "-"]  # fmt: skip
    with subprocess.Popen(decode, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        size = sum(len(piece) for piece in iter(lambda: proc.stdout.read(1 << 20), b""))  # type: ignore[union-attr]
    assert proc.returncode == 0, f"ffmpeg could not decode {path.name}"
    return size / 2 / rate


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


def loudness(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) of ``path``, as ffmpeg's ebur128 says."""
    done = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
         "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    summary = done.stderr[done.stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert integrated, summary
    assert peak, summary
    return float(integrated.group(1)), float(peak.group(1))


# --- HTTP ---------------------------------------------------------------------------------------


class Receiver:
    """A real HTTP server that records every request and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[tuple[int, dict[str, str], float]] = []  # status, headers, delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                status, headers, delay = (
                    receiver.answers.pop(0) if receiver.answers else (204, {}, 0.0)
                )
                time.sleep(delay)  # a slow receiver, to meet the sender's timeout
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "20")
                self.end_headers()
                self.wfile.write(b"receiver says hello\n")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *_: None  # type: ignore[method-assign]  # a client gone
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
