"""Generated inputs and the bare ffmpeg command every measurement is compared with."""

from __future__ import annotations

import subprocess
from pathlib import Path

from video2mp3.converter.ffmpeg import find_ffmpeg

FFMPEG = find_ffmpeg()


def make_video(path: Path, seconds: int, audio_codec: str = "aac", size: str = "1280x720") -> Path:
    """A ``seconds``-long H.264 video with pink noise (not a sine: noise gives VBR encoders a
    realistic bitrate); made once, reused while the file exists."""
    if not path.exists():
        subprocess.run(
            [FFMPEG, "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
             "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:r=48000:a=0.3",
             "-c:v", "libx264", "-preset", "ultrafast", "-c:a", audio_codec, "-ac", "2",
             "-shortest", str(path)],
            check=True,
        )  # fmt: skip
    return path


def faststart(source: Path) -> Path:
    """``source`` with its index (moov) moved to the front: readable while it arrives."""
    path = source.with_name(f"{source.stem}-faststart{source.suffix}")
    if not path.exists():
        subprocess.run(
            [FFMPEG, "-loglevel", "error", "-y", "-i", str(source), "-c", "copy",
             "-movflags", "+faststart", str(path)],
            check=True,
        )  # fmt: skip
    return path


def repeated(source: Path, size: int, path: Path) -> Path:
    """At least ``size`` bytes of video, made by repeating ``source`` (stream copy: fast)."""
    if not path.exists():
        loops = -(-size // source.stat().st_size) - 1
        subprocess.run(
            [FFMPEG, "-loglevel", "error", "-y", "-stream_loop", str(loops), "-i", str(source),
             "-c", "copy", str(path)],
            check=True,
        )  # fmt: skip
    return path


def bare(src: Path, dst: Path) -> None:
    """The plain ffmpeg command for the same result (the converter's default, VBR -V2)."""
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-y", "-i", str(src), "-map", "0:a:0", "-vn",
         "-c:a", "libmp3lame", "-q:a", "2", str(dst)],
        check=True,
    )  # fmt: skip
