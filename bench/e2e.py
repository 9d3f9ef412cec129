"""End to end over HTTP: from the first byte of the upload to the API reporting ``succeeded``,
against copying the file and running bare ffmpeg on it (what a user would do by hand)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

import requests

from bench.media import bare
from bench.stack import Stack, distributed, sign_up


def upload_to_done(stack: Stack, video: Path) -> tuple[dict[str, float], str, dict[str, str]]:
    """Seconds of upload, then of conversion after it, through ``stack``'s public API; and the
    MP3's URL with the headers that fetch it."""
    user = sign_up(stack.url, f"e2e-{time.monotonic_ns()}@example.com")
    started = time.monotonic()
    with video.open("rb") as data:
        answer = requests.post(
            f"{stack.url}/api/v1/jobs",
            headers=user,
            files={"file": (video.name, data, "video/mp4")},
            timeout=600,
        )
    answer.raise_for_status()
    uploaded = time.monotonic()
    job_url = f"{stack.url}/api/v1/jobs/{answer.json()['id']}"
    while (job := requests.get(job_url, headers=user, timeout=10).json())["status"] not in (
        "succeeded",
        "failed",
    ):
        time.sleep(0.02)
    done = time.monotonic()
    assert job["status"] == "succeeded", job
    times = {"total_s": done - started, "upload_s": uploaded - started, "after_s": done - uploaded}
    return times, f"{job_url}/mp3", user


def copy_and_bare(video: Path) -> float:
    """What the user would do by hand: copy the file, run ffmpeg."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        shutil.copyfile(video, Path(tmp, video.name))
        bare(Path(tmp, video.name), Path(tmp, "out.mp3"))
        return time.monotonic() - started


def ratio(
    stack: Callable[[], ContextManager[Stack]], video: Path, converters: int = 0
) -> dict[str, float]:
    """End to end on ``stack`` (with ``converters`` started) over cp + bare, same run."""
    with stack() as running:
        for n in range(converters):
            running.start("converter", f"converter-{n}")
        ours, _, _ = upload_to_done(running, video)
    baseline = copy_and_bare(video)
    return {
        **{k: round(v, 2) for k, v in ours.items()},
        "cp_plus_bare_s": round(baseline, 2),
        "ratio": round(ours["total_s"] / baseline, 2),
    }


def spread(video: Path, converters: int, *, fan_out: bool = True) -> float:
    """Seconds from the end of the upload to ``succeeded`` on the distributed processes, with
    ``converters`` converters of one core each sharing the long ``video`` (segments on the bus),
    or without ``fan_out`` converting it alone."""
    with distributed() as stack:
        stack.env["VIDEO2MP3_CONVERTER_CORES"] = "1"
        stack.env["VIDEO2MP3_FAN_OUT_AFTER_SECONDS"] = "120" if fan_out else "0"
        for n in range(converters):
            stack.start("converter", f"converter-{n}")
        times, _, _ = upload_to_done(stack, video)
    return times["after_s"]
