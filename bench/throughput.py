"""Throughput on the distributed processes: does it grow with converters, and does the gateway
keep up with them?

1. ``JOBS`` short jobs are queued while no converter runs; then 1 (or 2) converters start. The
   clock runs from the first job seen ``processing`` to the last seen ``succeeded`` through the
   public API, polled at 20 Hz; the gateway's lag is how long after the converters' own metrics
   counted the last conversion the API showed it.
2. The tracker's capacity: a burst of converter events (progress, then success, for queued jobs)
   published straight to the exchange, as ten busy converters would; events applied per second,
   counted when the API shows every job succeeded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pika
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import AMQP_URL, Stack, distributed, sign_up
from video2mp3.domain.events import ConversionProgress, ConversionSucceeded, Event, Owner

JOBS = 20
BURST_JOBS = 50
PROGRESS_PER_JOB = 20  # ten converters report progress every second: 20 s of work each


def _jobs(base: str, user: dict[str, str]) -> list[dict[str, object]]:
    page = requests.get(f"{base}/api/v1/jobs?limit=100", headers=user, timeout=10).json()
    return list(page["items"])


def _converted(stack: Stack, names: list[str]) -> int:
    total = 0
    for name in names:
        text = requests.get(f"http://127.0.0.1:{stack.admin_ports[name]}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            if family.name == "video2mp3_conversions":
                total += int(sum(s.value for s in family.samples if s.name.endswith("_total")))
    return total


def converters(video: Path, count: int) -> dict[str, float]:
    """Queue ``JOBS`` uploads of ``video``, start ``count`` converters, time them to done."""
    with distributed() as stack:
        user = sign_up(stack.url)
        data = video.read_bytes()
        for i in range(JOBS):
            requests.post(
                f"{stack.url}/api/v1/jobs",
                headers=user,
                files={"file": (f"clip{i}.mp4", data)},
                timeout=60,
            ).raise_for_status()
        names = [f"converter-{n}" for n in range(count)]
        for name in names:
            stack.start("converter", name)
        first = converted_at = None
        while True:
            statuses = [job["status"] for job in _jobs(stack.url, user)]
            now = time.monotonic()
            if first is None and any(s != "queued" for s in statuses):
                first = now
            if converted_at is None and _converted(stack, names) >= JOBS:
                converted_at = now
            if statuses.count("succeeded") == JOBS:
                break
            time.sleep(0.05)
        assert first is not None
        return {
            "seconds": round(now - first, 2),
            "gateway_lag_s": round(now - (converted_at or now), 2),
        }


def tracker_capacity() -> dict[str, float]:
    """Events per second the gateway worker applies from a burst of converter events."""
    with distributed() as stack:
        user = sign_up(stack.url)
        for i in range(BURST_JOBS):
            requests.post(
                f"{stack.url}/api/v1/jobs",
                headers=user,
                files={"file": (f"clip{i}.mp4", b"not converted: no converter runs")},
                timeout=60,
            ).raise_for_status()
        jobs = [str(job["id"]) for job in _jobs(stack.url, user)]
        owner = Owner(1, "bench@example.com")
        events = [
            Event(job_id, ConversionProgress((step + 1) / (PROGRESS_PER_JOB + 1)))
            for step in range(PROGRESS_PER_JOB)
            for job_id in jobs
        ] + [
            Event(job_id, ConversionSucceeded("f" * 24, 1, 1.0, owner, "c.mp4")) for job_id in jobs
        ]
        prefix = stack.env["VIDEO2MP3_BROKER_PREFIX"]
        with pika.BlockingConnection(pika.URLParameters(AMQP_URL)) as connection:
            channel = connection.channel()
            started = time.monotonic()
            for event in events:
                channel.basic_publish(prefix, event.type, event.to_json())
        while sum(job["status"] == "succeeded" for job in _jobs(stack.url, user)) < len(jobs):
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        return {"events": len(events), "events_per_s": round(len(events) / elapsed, 1)}
