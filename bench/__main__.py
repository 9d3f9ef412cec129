"""Benchmarks against bare ffmpeg, measured in the same run: ``make bench`` (``python -m bench``).

1. Conversion: the converter's whole handling of a job (blob copy, probe, ffmpeg, probe of the
   result, blob store) against the bare ffmpeg command on the same file; median of ``RUNS``.
2. Stream copy: an MP3-audio source is remuxed, not re-encoded; against a bare transcode.
3. Upload memory: a large multipart body streamed into the blob store; peak RSS growth.

``BENCH_SECONDS`` sets the length of the generated 720p video (default 120).
"""

from __future__ import annotations

import io
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.adapters.bus.inprocess import InProcessBus
from video2mp3.converter.media import Transcoder, find_ffmpeg
from video2mp3.converter.worker import Converter
from video2mp3.domain.events import ConversionRequested, Event, Owner
from video2mp3.domain.options import ConversionOptions
from video2mp3.gateway.multipart import MultipartForm
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.tokens import Principal

RUNS = 3
SECONDS = int(os.environ.get("BENCH_SECONDS", "120"))
FFMPEG = find_ffmpeg()


def median_time(work: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_video(path: Path, audio_codec: str) -> None:
    # anoisesrc, not a sine: noise gives VBR encoders a realistic bitrate.
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={SECONDS}",
         "-f", "lavfi", "-i", f"anoisesrc=d={SECONDS}:c=pink:r=48000:a=0.3",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", audio_codec, "-ac", "2",
         "-shortest", str(path)],
        check=True,
    )  # fmt: skip


def bare(src: Path, dst: Path) -> None:
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-y", "-i", str(src), "-map", "0:a:0", "-vn",
         "-c:a", "libmp3lame", "-q:a", "2", str(dst)],
        check=True,
    )  # fmt: skip


def through_converter(src: Path, root: Path) -> Callable[[], None]:
    blobs = LocalBlobStore(root / "blobs")
    converter = Converter(
        blobs, InProcessBus(), Transcoder(FFMPEG, timeout=3600, max_seconds=86400)
    )
    with src.open("rb") as data:
        video = blobs.put(
            iter(lambda: data.read(1 << 20), b""), filename=src.name, content_type="video/mp4"
        )
    owner = Owner(1, "bench@example.com")
    return lambda: converter.handle(Event("bench", ConversionRequested(video.id, owner, src.name)))


class _NoJobs:
    """The upload path without a database: the bench measures the stream into the blob store."""

    def add(self, *_: object) -> None:
        return None


def upload_rss_growth(root: Path, size: int) -> tuple[float, float]:
    """Stream a ``size``-byte multipart upload into a blob store: seconds, peak RSS growth in MB."""
    boundary = "BENCH"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n\r\n'

    class Body(io.RawIOBase):
        def __init__(self) -> None:
            self.parts = [head.encode()]
            self.left = size
            self.block = os.urandom(1024 * 1024)

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            if self.left > 0:
                chunk = self.block[: min(n, self.left, len(self.block))]
                self.left -= len(chunk)
                return chunk if not self.parts else self.parts.pop() + chunk
            if self.left == 0:
                self.left = -1
                return f"\r\n--{boundary}--\r\n".encode()
            return b""

    body = Body()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    form = MultipartForm(body, boundary)  # type: ignore[arg-type]
    form.read_fields()
    gateway = Gateway(_NoJobs(), LocalBlobStore(root / "up"), size + 1)  # type: ignore[arg-type]
    gateway.upload(
        Principal(1, "bench@example.com"), "v.mp4", form.file_chunks(), ConversionOptions()
    )
    elapsed = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return elapsed, grown / 1024


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = 1024 * 1024 * 1024
        t_up, rss = upload_rss_growth(root, size)  # first: a later step's peak would hide it
        aac, mp3 = root / "aac.mp4", root / "mp3.mp4"
        make_video(aac, "aac")
        make_video(mp3, "libmp3lame")
        t_bare = median_time(lambda: bare(aac, root / "bare.mp3"))
        t_v2m = median_time(through_converter(aac, root / "a"))
        t_copy = median_time(through_converter(mp3, root / "b"))
        t_bare_mp3 = median_time(lambda: bare(mp3, root / "bare2.mp3"))
        results = {
            "video_seconds": SECONDS,
            "bare_ffmpeg_s": round(t_bare, 2),
            "converter_s": round(t_v2m, 2),
            "converter_over_bare": round(t_v2m / t_bare, 2),
            "mp3_source_bare_transcode_s": round(t_bare_mp3, 2),
            "mp3_source_converter_copy_s": round(t_copy, 2),
            "copy_over_bare_transcode": round(t_copy / t_bare_mp3, 3),
            "upload_1GiB_s": round(t_up, 2),
            "upload_1GiB_MBps": round(size / t_up / 1e6, 1),
            "upload_peak_rss_growth_MB": round(rss, 1),
        }
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
