"""What an open page costs the gateway: ``python -m bench.live``, or the ``live`` section of
``make bench``.

Runs auth and the gateway as ``video2mp3 serve`` does (gunicorn, gthread), one gateway worker
process, then opens ``BENCH_STREAMS`` live pages (``GET /api/v1/events``) and measures, in that
process: resident memory and threads per open page, CPU while the pages sit open, and the delay
from a job change committed to the jobs database (as the tracker commits it) to its event on a
page. ``BENCH_STREAMS`` sets the number of pages (default 100).
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from video2mp3 import signing
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.jobs import SQLJobRepository
from video2mp3.auth.keys import generate
from video2mp3.domain.events import ConversionProgress, Event

STREAMS = int(os.environ.get("BENCH_STREAMS", "100"))
UPDATES = 30
IDLE_SECONDS = 20.0
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin() -> list[str]:
    """A free admin port: the default ones may be taken by another stack on this machine."""
    return ["--admin-port", str(free_port())]


def proc_status(pid: int) -> dict[str, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "threads": int(fields["Threads"]),
        "cpu_ticks": int(stat[11]) + int(stat[12]),
    }


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not start")


def listen(url: str, headers: dict[str, str], events: queue.Queue[tuple[float, str]]) -> None:
    with requests.get(f"{url}/api/v1/events", headers=headers, stream=True, timeout=60) as r:
        r.raise_for_status()
        events.put((time.monotonic(), "open"))
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.put((time.monotonic(), line))


def measure(streams: int) -> dict[str, Any]:
    """Open ``streams`` live pages on one gunicorn worker process and measure what they cost."""
    root = Path(tempfile.mkdtemp(prefix="v2m-bench-live-"))
    generate(root / "keys")
    signing.generate(root / "link-keys")
    env = {
        **os.environ,
        "VIDEO2MP3_AUTH_DB_URL": f"sqlite:///{root}/auth.db",
        "VIDEO2MP3_JOBS_DB_URL": f"sqlite:///{root}/jobs.db",
        "VIDEO2MP3_BLOB_DIR": str(root / "blobs"),
        "VIDEO2MP3_JWT_KEY_DIR": str(root / "keys"),
        "VIDEO2MP3_LINK_KEY_DIR": str(root / "link-keys"),
        "VIDEO2MP3_WEB_WORKERS": "1",
        "VIDEO2MP3_LIVE_PAGES": str(streams),
        "VIDEO2MP3_LOG_LEVEL": "WARNING",
    }
    ports = {"auth": free_port(), "gateway": free_port()}
    env["VIDEO2MP3_AUTH_URL"] = f"http://127.0.0.1:{ports['auth']}"
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", "serve", name, "--port", str(port), *admin()],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(root / f"{name}.log").open("wb"),
        )
        for name, port in ports.items()
    }
    url = f"http://127.0.0.1:{ports['gateway']}"
    try:
        wait_ready(f"http://127.0.0.1:{ports['auth']}")
        wait_ready(url)
        credentials = {"email": "bench@example.com", "password": "pw-123456"}
        requests.post(f"{url}/api/v1/users", json=credentials, timeout=10).raise_for_status()
        token = requests.post(f"{url}/login", auth=tuple(credentials.values()), timeout=10).text
        headers = {"Authorization": f"Bearer {token}"}
        files = {"file": ("a.mp4", b"x" * 1000)}
        job_id = requests.post(f"{url}/api/v1/jobs", headers=headers, files=files, timeout=10)
        job_id.raise_for_status()
        job = job_id.json()["id"]

        worker = worker_pid(procs["gateway"].pid)
        time.sleep(1)
        before = proc_status(worker)
        events: queue.Queue[tuple[float, str]] = queue.Queue()
        for _ in range(streams):
            threading.Thread(target=listen, args=(url, headers, events), daemon=True).start()
        opened = 0
        while opened < streams:
            if events.get(timeout=30)[1] == "open":
                opened += 1
        time.sleep(3)  # the initial look back of the poller delivers the job once: let it pass
        while not events.empty():
            events.get()
        with_streams = proc_status(worker)
        time.sleep(IDLE_SECONDS)
        idle = proc_status(worker)

        jobs = SQLJobRepository(create_engine(env["VIDEO2MP3_JOBS_DB_URL"]))
        delays = []
        for i in range(1, UPDATES + 1):
            progress = round(i / (UPDATES + 2), 3)
            jobs.apply(Event(job, ConversionProgress(progress)))
            committed = time.monotonic()
            arrivals = []
            while len(arrivals) < streams:
                at, line = events.get(timeout=10)
                if f'"progress":{progress}' in line:
                    arrivals.append(at - committed)
            delays.append(max(arrivals))  # the last of the pages to hear it
            time.sleep(0.3)
        over = requests.get(f"{url}/api/v1/events", headers=headers, timeout=10)
        result = {
            "streams": streams,
            "rss_mib_before": round(before["rss_kib"] / 1024, 1),
            "rss_mib_with_streams": round(with_streams["rss_kib"] / 1024, 1),
            "rss_kib_per_stream": round((with_streams["rss_kib"] - before["rss_kib"]) / streams, 1),
            "threads_before": before["threads"],
            "threads_with_streams": with_streams["threads"],
            "cpu_percent_of_a_core_idle": round(
                100 * (idle["cpu_ticks"] - with_streams["cpu_ticks"]) / TICK / IDLE_SECONDS, 2
            ),
            "delay_ms_median": round(1000 * statistics.median(delays)),
            "delay_ms_max": round(1000 * max(delays)),
            "one_more_stream": over.status_code,
        }
        return result
    finally:
        for proc in procs.values():
            proc.terminate()  # open streams would hold the worker for its graceful timeout
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


if __name__ == "__main__":
    print(json.dumps(measure(STREAMS), indent=2))
