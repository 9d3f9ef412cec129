"""End to end over HTTP: from the first byte of the upload to the API reporting ``succeeded``,
against copying the file and running bare ffmpeg on it (what a user would do by hand).

The upload is streamed from the file (never whole in memory), at full speed or paced to a
given rate, as over a real network: with a video readable front to back, the conversion runs
while it arrives, so end to end tends to the longer of the two, not their sum.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import BinaryIO

import requests

from bench.media import bare
from bench.stack import Stack, distributed, sign_up

PIECE = 1024 * 1024
POLL_SECONDS, POLL_NEAR_END, NEAR_END_SECONDS = 0.25, 0.02, 0.5


class Body:
    """A multipart body holding ``video``, read from the file as it is sent, at most ``rate``
    bytes a second.

    ``read`` hands over ``PIECE`` bytes whatever size it is asked for: http.client asks for 8 KiB
    at a time, and this process shares the machine's cores with the stack it measures.
    """

    def __init__(self, video: Path, rate: float | None = None) -> None:
        self.boundary = uuid.uuid4().hex
        head = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file";'
            f' filename="{video.name}"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._length = len(head) + video.stat().st_size + len(tail)
        self._parts: list[BinaryIO] = [io.BytesIO(head), video.open("rb"), io.BytesIO(tail)]
        self._rate, self._sent, self._started = rate, 0, time.monotonic()

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        while self._parts:
            if chunk := self._parts[0].read(PIECE):
                self._sent += len(chunk)
                if self._rate:
                    time.sleep(
                        max(0.0, self._sent / self._rate - (time.monotonic() - self._started))
                    )
                return chunk
            self._parts.pop(0).close()
        return b""


class Progress:
    """A job's progress as polled: the end is near once the pace so far says it is within
    ``NEAR_END_SECONDS`` (the converter reports progress once a second), or once as much time
    has passed as the ``expected`` seconds after the upload (a run before this one took), less
    that margin: a job of a few seconds gives too few reports to tell its pace."""

    def __init__(self, expected: float | None = None) -> None:
        self.expected = expected
        self.first: tuple[float, float] | None = None  # (when, progress) of the first report
        self.last: tuple[float, float] | None = None  # ... of the latest new one

    def add(self, progress: float) -> None:
        if progress > 0 and (self.last is None or progress > self.last[1]):
            self.last = (time.monotonic(), progress)
            self.first = self.first or self.last

    def near_end(self, waited: float) -> bool:
        if self.expected is not None and waited >= self.expected - NEAR_END_SECONDS:
            return True
        if self.first is None or self.last is None or self.last[1] <= self.first[1]:
            return False
        (t0, p0), (t1, p1) = self.first, self.last
        end = t1 + (t1 - t0) * (1 - p1) / (p1 - p0)
        return time.monotonic() >= end - NEAR_END_SECONDS

    def pause(self, waited: float) -> float:
        """Seconds until the next look: often near the end, for a precise time; seldom before
        (a look costs the gateway 1.8 ms of CPU, and it shares the cores with the conversion it
        waits for); and at most a tenth of the time ``waited`` so far, so that a short job, over
        before its progress reports tell a pace, or one faster than the run before, is still
        timed within about 10 %."""
        if self.near_end(waited):
            return POLL_NEAR_END
        return min(POLL_SECONDS, max(POLL_NEAR_END, waited / 10))


def upload_to_done(
    stack: Stack,
    video: Path,
    rate: float | None = None,
    options: dict[str, str] | None = None,
    expected: float | None = None,
) -> tuple[dict[str, float], str, dict[str, str]]:
    """Seconds of upload (at most ``rate`` bytes a second), then of conversion after it,
    through ``stack``'s public API, with the conversion ``options`` (``expected``: about how
    long the conversion after the upload takes, if known); and the MP3's URL with the headers
    that fetch it."""
    user = sign_up(stack.url, f"e2e-{time.monotonic_ns()}@example.com")
    started = time.monotonic()
    body = Body(video, rate)
    answer = requests.post(
        f"{stack.url}/api/v1/jobs",
        params=options,
        headers={**user, "Content-Type": f"multipart/form-data; boundary={body.boundary}"},
        data=body,
        timeout=600,
    )
    answer.raise_for_status()
    uploaded = time.monotonic()
    job_url = f"{stack.url}/api/v1/jobs/{answer.json()['id']}"
    seen = Progress(expected)
    while (job := requests.get(job_url, headers=user, timeout=10).json())["status"] not in (
        "succeeded",
        "failed",
    ):
        seen.add(job["progress"])
        time.sleep(seen.pause(time.monotonic() - uploaded))
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
    stack: Callable[[], ContextManager[Stack]],
    video: Path,
    converters: int = 0,
    rate: float | None = None,
    runs: int = 5,
) -> dict[str, float]:
    """End to end on ``stack`` (with ``converters`` started, uploading at most ``rate`` bytes a
    second) over cp + bare, same run, on bare's settings: no cover (a still found in the video
    is work bare ffmpeg does not do; the converter section shows its cost). Medians of ``runs``,
    ours and the baseline taking turns, so that a slower spell of a shared machine weighs on
    both (each run a new user: the conversion cache is per user). Each run starts once the
    files the last one wrote are on disk: the kernel would write them back 30 s later, in the
    middle of a later run, on whichever side it happened to be. A first run, not counted,
    warms the stack up and tells the others when to look closely for the end."""
    ours, baseline = [], []
    with stack() as running:
        for n in range(converters):
            running.start("converter", f"converter-{n}")
        os.sync()
        expected = upload_to_done(running, video, rate, {"cover": "none"})[0]["after_s"]
        for _ in range(runs):
            os.sync()
            ours.append(upload_to_done(running, video, rate, {"cover": "none"}, expected)[0])
            expected = ours[-1]["after_s"]
            os.sync()
            baseline.append(copy_and_bare(video))
    medians = {key: statistics.median(run[key] for run in ours) for key in ours[0]}
    return {
        **{k: round(v, 2) for k, v in medians.items()},
        "cp_plus_bare_s": round(statistics.median(baseline), 2),
        "ratio": round(medians["total_s"] / statistics.median(baseline), 2),
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
