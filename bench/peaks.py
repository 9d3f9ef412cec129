"""Peak memory of each service under its worst allowed load: ``make bench-peaks``.

The Kubernetes requests and limits (deploy/k8s/base) are derived from these numbers
(docs/DEPLOY.md, "Sizing"). Each service runs as ``video2mp3 serve`` in its own processes, with
the settings the manifests give it, and the resident memory of its whole process tree (gunicorn's
master and worker, or the converter and its ffmpeg) is sampled every few milliseconds.

1. auth: a burst of concurrent logins, half of them for unknown emails (which cost a hash too),
   once with the argon2 cost the settings default to and once with argon2-cffi's own default.
2. gateway: ``BENCH_TRANSFERS`` (32, its thread count) uploads in flight at once, each paced so
   that all overlap, as slow clients would.
3. converter: the largest allowed input, ``BENCH_INPUT_BYTES`` (default 2 GiB, the upload limit),
   a 720p H.264/AAC video, converted by the converter's handler; peak RSS of Python and of ffmpeg.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.media import make_video, repeated
from bench.stack import Stack
from video2mp3.auth.keys import generate

MiB = 1024 * 1024
LOGINS = 64
TRANSFERS = int(os.environ.get("BENCH_TRANSFERS", "32"))
TRANSFER_BYTES = 32 * MiB
INPUT_BYTES = int(os.environ.get("BENCH_INPUT_BYTES", str(2 * 1024 * MiB)))


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, now."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) * 1024 if match else 0
    return total


class PeakSampler:
    """Samples ``tree_rss(pid)`` in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(0.005)

    def __enter__(self) -> PeakSampler:
        self.peak = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def auth_peak(root: Path, argon2_kib: int) -> tuple[int, int]:
    """Idle and peak RSS of auth (1 worker, 8 threads) through a burst of logins."""
    generate(root / "keys")
    stack = Stack(
        root,
        {
            "VIDEO2MP3_AUTH_DB_URL": f"sqlite:///{root}/auth.db",
            "VIDEO2MP3_JWT_KEY_DIR": str(root / "keys"),
            "VIDEO2MP3_WEB_WORKERS": "1",
            "VIDEO2MP3_WEB_THREADS": "8",
            "VIDEO2MP3_ARGON2_MEMORY_KIB": str(argon2_kib),
        },
    )
    stack.start("auth")
    base = f"http://127.0.0.1:{stack.ports['auth']}"
    try:
        user = {"email": "a@example.com", "password": "pw-123456"}
        requests.post(f"{base}/users", json=user, timeout=30)
        idle = tree_rss(stack.procs["auth"].pid)

        def login(i: int) -> int:
            email = user["email"] if i % 2 else f"nobody{i}@example.com"
            return requests.post(
                f"{base}/login", auth=(email, "pw-123456"), timeout=120
            ).status_code

        with PeakSampler(stack.procs["auth"].pid) as sampler, ThreadPoolExecutor(LOGINS) as pool:
            codes = list(pool.map(login, range(LOGINS)))
        assert set(codes) == {200, 401}, codes
        return idle, sampler.peak
    finally:
        stack.stop("auth")


def paced_body(size: int, boundary: str) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    block = os.urandom(MiB)
    for _ in range(size // MiB):
        yield block
        time.sleep(0.05)  # a client at about 20 MB/s: every upload is still in flight
    yield f"\r\n--{boundary}--\r\n".encode()


def gateway_peak(root: Path) -> tuple[int, int]:
    """Idle and peak RSS of the gateway (1 worker, TRANSFERS threads) with TRANSFERS uploads."""
    generate(root / "keys")
    stack = Stack(
        root,
        {
            "VIDEO2MP3_AUTH_DB_URL": f"sqlite:///{root}/auth.db",
            "VIDEO2MP3_JWT_KEY_DIR": str(root / "keys"),
            "VIDEO2MP3_JOBS_DB_URL": f"sqlite:///{root}/jobs.db",
            "VIDEO2MP3_BLOB_DIR": str(root / "blobs"),
            "VIDEO2MP3_WEB_WORKERS": "1",
            "VIDEO2MP3_WEB_THREADS": str(TRANSFERS),
        },
    )
    try:
        stack.start("auth")
        stack.start("gateway")
        user = {"email": "g@example.com", "password": "pw-123456"}
        requests.post(f"{stack.url}/api/v1/users", json=user, timeout=30)
        token = requests.post(
            f"{stack.url}/login", auth=(user["email"], user["password"]), timeout=30
        )
        headers = {"Authorization": f"Bearer {token.text}"}
        gateway = stack.procs["gateway"].pid
        idle = tree_rss(gateway)

        def upload(_: int) -> int:
            boundary = uuid.uuid4().hex
            return requests.post(
                f"{stack.url}/api/v1/jobs",
                data=paced_body(TRANSFER_BYTES, boundary),
                headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=600,
            ).status_code

        with PeakSampler(gateway) as sampler, ThreadPoolExecutor(TRANSFERS) as pool:
            codes = list(pool.map(upload, range(TRANSFERS)))
        assert codes == [202] * TRANSFERS or codes == [201] * TRANSFERS, codes
        return idle, sampler.peak
    finally:
        for name in list(stack.procs):
            stack.stop(name)


def largest_input(root: Path, size: int) -> Path:
    """A 720p H.264/AAC MP4 of about ``size`` bytes: one minute of noise, repeated."""
    return repeated(make_video(root / "clip.mp4", 60), size, root / "largest.mp4")


CONVERT = """
import json, resource, sys
from pathlib import Path
from bench.__main__ import through_converter
convert = through_converter(Path(sys.argv[1]), Path(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
convert()
print(json.dumps({
    "python_before_kib": before,
    "python_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "ffmpeg_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}))
"""


def converter_peak(root: Path) -> dict[str, int]:
    """Peak RSS of the converter's Python process and of its largest child (ffmpeg, ffprobe)."""
    video = largest_input(root, INPUT_BYTES)
    out = subprocess.run(
        [sys.executable, "-c", CONVERT, str(video), str(root / "conv")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    peaks: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    peaks["input_bytes"] = video.stat().st_size
    return peaks


def main() -> None:
    results: dict[str, object] = {}
    steps: dict[str, Callable[[Path], object]] = {
        "auth_argon2_19MiB": lambda root: auth_peak(root, 19 * 1024),
        "auth_argon2_64MiB": lambda root: auth_peak(root, 64 * 1024),
        "gateway": gateway_peak,
        "converter": converter_peak,
    }
    chosen = sys.argv[1:] or list(steps)
    for name in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            value = steps[name](Path(tmp))
        if isinstance(value, tuple):
            idle, peak = value
            value = {"idle_MiB": round(idle / MiB), "peak_MiB": round(peak / MiB)}
        elif isinstance(value, dict):
            value = {
                k.replace("_kib", "_MiB"): round(v / 1024) if k.endswith("_kib") else v
                for k, v in value.items()
            }
        results[name] = value
        print(f"{name:<20} {value}", flush=True)
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"peaks-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
