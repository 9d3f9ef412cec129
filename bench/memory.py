"""Peak memory of the gateway and the converter while a 1 GiB video goes in and its MP3 comes
out, on the distributed processes: the high-water mark of each process (``VmHWM``), and ffmpeg's
resident size sampled while it runs."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import requests

from bench.e2e import upload_to_done
from bench.stack import distributed


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class ChildSampler:
    """The largest resident size any child of ``pid`` reaches while this runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        while not self._stop.wait(0.05):
            for child in children.read_text().split():
                with contextlib.suppress(OSError):  # it may have ended meanwhile
                    self.peak_kib = max(self.peak_kib, _kib(int(child), "VmRSS"))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


def peaks(video: Path) -> dict[str, float]:
    """Upload ``video``, convert it, download the MP3; each process's peak, in MB."""
    with distributed() as stack:
        stack.start("converter")
        ffmpeg = ChildSampler(stack.procs["converter"].pid)
        timings, mp3_url, user = upload_to_done(stack, video)
        ffmpeg_kib = ffmpeg.stop()
        mp3 = requests.get(mp3_url, headers=user, stream=True, timeout=60)
        mp3.raise_for_status()
        mp3_bytes = sum(len(chunk) for chunk in mp3.iter_content(1 << 20))
        gateway = max(_kib(pid, "VmHWM") for pid in stack.pids("gateway")[1:])
        return {
            "video_MB": round(video.stat().st_size / 1e6),
            "mp3_MB": round(mp3_bytes / 1e6, 1),
            "upload_s": round(timings["upload_s"], 2),
            "gateway_worker_peak_MB": round(gateway / 1024, 1),
            "converter_peak_MB": round(_kib(stack.procs["converter"].pid, "VmHWM") / 1024, 1),
            "ffmpeg_peak_MB": round(ffmpeg_kib / 1024, 1),
        }
