"""ffmpeg as a hardened subprocess: find it, probe inputs, convert the first audio stream to MP3.

Defences, together (DESIGN.md, "media is hostile input"): a separate probe process; ``-nostdin``;
``-format_whitelist`` and ``-protocol_whitelist file``; bounded probing; ``-map 0:a:0 -vn -sn -dn``
so video is never decoded; output bounded in duration and size; server-chosen file names; a
wall-clock timeout; CPU, memory and file-size limits on the child.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from video2mp3.converter.probe import PROBE_OPTIONS
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import ConversionTimeout, MediaError, SettingsError, Video2mp3Error

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 60
PROBE_FILE_BYTES = 1024 * 1024  # the probe writes nothing; room for Python's bytecode cache
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_BITRATE_BPS = 320_000
MEMORY_LIMIT = 2 * 1024**3
FSIZE_SLACK = 8 * 1024 * 1024


@dataclass(frozen=True)
class MediaInfo:
    format: str
    codec: str
    channels: int
    sample_rate: int
    duration: float | None


def check_probe() -> None:
    """Fail at start-up, not on every job, when PyAV (the probe) is not installed."""
    if importlib.util.find_spec("av") is None:
        raise SettingsError("the converter needs PyAV: install video2mp3[converter]")


def find_ffmpeg(configured: str | None = None) -> str:
    """``configured``, else ffmpeg on PATH, else the static build shipped by imageio-ffmpeg."""
    if configured:
        return configured
    if found := shutil.which("ffmpeg"):
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise SettingsError(
            "VIDEO2MP3_FFMPEG: no ffmpeg on PATH; install ffmpeg or video2mp3[converter]"
        ) from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def probe(path: Path) -> MediaInfo:
    """What the file holds; ``MediaError`` (``invalid_media``, ``no_audio``) if unusable."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "video2mp3.converter.probe", str(path)],
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
            preexec_fn=limits(cpu_seconds=PROBE_TIMEOUT, file_bytes=PROBE_FILE_BYTES),
        )
    except subprocess.TimeoutExpired:
        raise MediaError("the file took too long to analyse", code="invalid_media") from None
    if done.returncode > 0 and not done.stdout:  # our failure (say, PyAV missing), not the file's
        log.error("the probe failed", extra={"stderr": done.stderr.decode(errors="replace")})
        raise Video2mp3Error(
            "the converter could not analyse files; operators are told", code="probe_failed"
        )
    try:
        facts = json.loads(done.stdout)
    except ValueError:  # killed by a signal or a limit: a crafted or broken file
        raise MediaError("the file could not be analysed", code="invalid_media") from None
    if "error" in facts:
        raise MediaError(facts["error"]["message"], code=facts["error"]["code"])
    return MediaInfo(**facts)


def command(
    ffmpeg: str,
    src: Path,
    dst: Path,
    info: MediaInfo,
    options: ConversionOptions,
    max_seconds: int,
) -> list[str]:
    """The ffmpeg command line that writes the MP3 for ``src`` to ``dst``."""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"]
    for option in ("format_whitelist", "protocol_whitelist", "probesize", "analyzeduration"):
        args += [f"-{option}", PROBE_OPTIONS[option]]
    args += ["-i", str(src), "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"]
    if info.codec == "mp3" and options.bitrate is None and options.quality is None:
        args += ["-c:a", "copy"]  # already MP3: remux, 15x faster than a transcode
    else:
        args += ["-c:a", "libmp3lame"]
        if options.vbr_quality is None:
            args += ["-b:a", f"{options.bitrate}k"]
        else:
            args += ["-q:a", str(options.vbr_quality)]
        if info.channels > 2:
            args += ["-ac", "2"]  # MP3 is at most stereo: downmix 5.1 and the like
        if info.sample_rate not in MP3_SAMPLE_RATES:
            args += ["-ar", "48000" if info.sample_rate > 48000 else "44100"]
    args += ["-t", str(max_seconds), "-fs", str(max_output_bytes(max_seconds))]
    return [*args, "-progress", "pipe:1", "-f", "mp3", str(dst)]


class Transcoder:
    def __init__(self, ffmpeg: str, *, timeout: int, max_seconds: int) -> None:
        self.ffmpeg = ffmpeg
        self.timeout = timeout
        self.max_seconds = max_seconds

    def convert(
        self,
        src: Path,
        dst: Path,
        info: MediaInfo,
        options: ConversionOptions,
        on_progress: Callable[[float], None],
    ) -> None:
        """Write the MP3 to ``dst``; ``MediaError`` or ``ConversionTimeout`` on failure."""
        if info.duration is not None and info.duration > self.max_seconds:
            raise MediaError(
                f"the audio lasts {info.duration:.0f} s; the limit is {self.max_seconds} s",
                code="too_long",
            )
        args = command(self.ffmpeg, src, dst, info, options, self.max_seconds)
        timed_out = threading.Event()
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                preexec_fn=limits(
                    cpu_seconds=self.timeout * 4,  # ffmpeg may use several cores
                    file_bytes=max_output_bytes(self.max_seconds) + FSIZE_SLACK,  # -fs overshoots
                ),
            )

            def kill() -> None:
                timed_out.set()
                proc.kill()

            timer = threading.Timer(self.timeout, kill)
            timer.start()
            try:
                _follow(proc, info.duration, on_progress)
                code = proc.wait()
            finally:
                timer.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if timed_out.is_set():
                raise ConversionTimeout(f"the conversion took longer than {self.timeout} s")
            if code < 0:  # killed by a limit: CPU time, memory or file size
                raise MediaError(
                    "the conversion needed more CPU, memory or disk than allowed",
                    code="resource_limit",
                )
            if code != 0:
                stderr.seek(0)
                last = stderr.read().decode(errors="replace").strip().splitlines()[-1:] or ["?"]
                raise MediaError(f"ffmpeg could not convert the file: {last[0]}")


def limits(*, cpu_seconds: int, file_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` capping CPU time, memory and written file size before the child runs.

    It only calls setrlimit, which takes no lock, so it is safe in the forked child.
    """

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))

    return apply


def max_output_bytes(max_seconds: int) -> int:
    """The largest MP3 ``max_seconds`` of audio can make, with room for headers."""
    return max_seconds * MAX_BITRATE_BPS // 8 + 1024 * 1024


def _follow(
    proc: subprocess.Popen[str], duration: float | None, on_progress: Callable[[float], None]
) -> None:
    """Read ffmpeg's ``-progress`` lines and report the fraction done."""
    assert proc.stdout is not None
    for line in proc.stdout:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and duration and value.isdigit():
            on_progress(min(int(value) / 1_000_000 / duration, 1.0))
