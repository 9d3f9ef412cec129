"""The live feed: one poller fans each change out once, to its owner's streams only."""

from __future__ import annotations

import queue
import threading
from datetime import datetime, timedelta

import pytest

from tests.support import wait_for
from video2mp3.domain.jobs import Job, Status, utcnow
from video2mp3.errors import Unavailable
from video2mp3.gateway.live import JobFeed


class ScriptedJobs:
    """``changed_since`` answers from a list the test fills; it may also fail once."""

    def __init__(self) -> None:
        self.rows: list[Job] = []
        self.polls = 0
        self.fail_next = False
        self.lock = threading.Lock()

    def changed_since(self, since: datetime, limit: int = 1000) -> list[Job]:
        with self.lock:
            self.polls += 1
            if self.fail_next:
                self.fail_next = False
                raise Unavailable("database down")
            return [j for j in self.rows if j.updated_at > since][:limit]


def job(owner: int, progress: float, at: datetime) -> Job:
    found = Job(owner_id=owner, owner_email="a@x", filename="a.mp4", id=f"job-{owner}")
    found.status, found.progress, found.updated_at = Status.PROCESSING, progress, at
    return found


def test_each_change_reaches_its_owner_once() -> None:
    jobs = ScriptedJobs()
    feed = JobFeed(jobs, max_streams=5, poll_seconds=0.01)  # type: ignore[arg-type]
    ann, bob = feed.join(1), feed.join(2)
    now = utcnow()
    with jobs.lock:
        jobs.rows = [job(1, 0.1, now), job(2, 0.5, now)]
    assert ann.jobs.get(timeout=5).progress == 0.1
    assert bob.jobs.get(timeout=5).progress == 0.5
    with jobs.lock:
        jobs.rows[0] = job(1, 0.2, now + timedelta(milliseconds=1))
    assert ann.jobs.get(timeout=5).progress == 0.2
    polled = jobs.polls
    wait_for(lambda: jobs.polls > polled + 3, 5, "more polls")
    for stream in (ann, bob):  # every poll saw both rows again; neither was sent twice
        with pytest.raises(queue.Empty):
            stream.jobs.get_nowait()
    ann.close()
    bob.close()
    assert feed.open_streams == 0


def test_the_poller_survives_errors_and_stops_with_its_last_stream() -> None:
    jobs = ScriptedJobs()
    jobs.fail_next = True
    feed = JobFeed(jobs, max_streams=1, poll_seconds=0.01)  # type: ignore[arg-type]
    stream = feed.join(1)
    with pytest.raises(Unavailable) as busy:
        feed.join(2)
    assert busy.value.code == "busy"
    with jobs.lock:
        jobs.rows = [job(1, 0.3, utcnow())]
    assert stream.jobs.get(timeout=5).progress == 0.3  # after the failed poll
    poller = feed._poller
    assert poller is not None
    stream.close()
    stream.close()  # twice is harmless
    poller.join(5)
    assert not poller.is_alive()
    again = feed.join(1)  # a new stream starts a new poller
    assert feed._poller is not None
    assert feed._poller.is_alive()
    again.close()


def test_one_user_cannot_take_every_stream() -> None:
    feed = JobFeed(ScriptedJobs(), max_streams=10, poll_seconds=0.01)  # type: ignore[arg-type]
    assert feed.max_per_user == 4
    mine = [feed.join(1) for _ in range(4)]
    with pytest.raises(Unavailable) as busy:
        feed.join(1)
    assert busy.value.code == "busy"
    assert "4 live pages open already" in busy.value.message
    others = [feed.join(2), feed.join(3)]  # other users still get theirs
    mine.pop(0).close()  # a page goes: its slot is its user's again
    mine.append(feed.join(1))
    assert feed.open_streams == 6
    for stream in mine + others:
        stream.close()
    assert feed.open_streams == 0
