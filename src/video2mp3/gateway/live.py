"""Live job updates for open pages: one poller per web process, fanned out to SSE streams.

A page holds one Server-Sent Events stream, ``GET /api/v1/events``. However many pages are open,
a web process runs at most one poller, which reads the jobs changed since its last look every
``POLL_SECONDS`` (an indexed range read) and hands each to the streams of its owner; it runs only
while a stream is open. The tracker writes progress as the converter reports it (every second),
so a change reaches the page within about ``POLL_SECONDS`` of the gateway learning it. Under
gunicorn's gthread workers a stream holds one thread for its life, so streams are capped per
process (past the cap a page gets 503 ``busy`` and polls instead, once a second), and per user
(``max_per_user``, so that one account cannot take every stream); a stream ends
after ``STREAM_SECONDS`` and the browser reconnects, so vanished clients free their threads, and
at once when the process is told to stop (``JobFeed.close``). README "What an open page costs"
has the measured figures.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, stream_with_context

from video2mp3.domain.jobs import Job, utcnow
from video2mp3.errors import Unavailable
from video2mp3.gateway.http import job_json, principal
from video2mp3.ports.jobs import JobRepository

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# Jobs are stamped before their transaction commits, so commits can land out of timestamp
# order: every poll looks back this far and drops what it has already sent.
OVERLAP = timedelta(seconds=2)
HEARTBEAT_SECONDS = 15.0  # a write to a vanished client fails, which ends its stream
STREAM_SECONDS = 300.0
MAX_PER_USER = 4  # live pages one user may hold in a process; past them, pages poll

Version = tuple[datetime, str, float]


class Subscription:
    """One stream's queue of changed jobs; ``close`` it when the stream ends."""

    def __init__(self, feed: JobFeed, owner_id: int) -> None:
        self.owner_id = owner_id
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()  # None: the end
        self.close: Callable[[], None] = lambda: feed.leave(self)


class JobFeed:
    """The per-process poller of the jobs table and the streams it feeds."""

    def __init__(
        self,
        jobs: JobRepository,
        max_streams: int,
        poll_seconds: float = POLL_SECONDS,
        *,
        max_per_user: int = MAX_PER_USER,
    ) -> None:
        self._jobs = jobs
        self.max_streams = max_streams
        self.max_per_user = max_per_user
        self._poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._streams: dict[int, set[Subscription]] = {}
        self._count = 0
        self._poller: threading.Thread | None = None
        self._closed = False

    @property
    def open_streams(self) -> int:
        return self._count

    def join(self, owner_id: int) -> Subscription:
        """A subscription to ``owner_id``'s changes; ``Unavailable`` (``busy``) at the process's
        cap or at the user's. The new stream is refused rather than the user's oldest ended: an
        ended page reconnects within a second, and would end the next oldest in its turn."""
        with self._lock:
            if self._closed:
                raise Unavailable("this server is stopping; the page reconnects", code="busy")
            if self._count >= self.max_streams:
                raise Unavailable(
                    "too many live pages on this server; the page polls instead", code="busy"
                )
            if len(self._streams.get(owner_id, ())) >= self.max_per_user:
                raise Unavailable(
                    f"you have {self.max_per_user} live pages open already; this one polls"
                    " instead (close another to make it live)",
                    code="busy",
                )
            subscription = Subscription(self, owner_id)
            self._streams.setdefault(owner_id, set()).add(subscription)
            self._count += 1
            if self._poller is None:
                self._poller = threading.Thread(target=self._run, name="job-feed", daemon=True)
                self._poller.start()
        return subscription

    def close(self) -> None:
        """End every stream now (the process is stopping) and accept no new one."""
        with self._lock:
            self._closed = True
            for subscriptions in self._streams.values():
                for subscription in subscriptions:
                    subscription.jobs.put(None)

    def leave(self, subscription: Subscription) -> None:
        with self._lock:
            streams = self._streams.get(subscription.owner_id, set())
            if subscription in streams:
                streams.discard(subscription)
                self._count -= 1
            if not streams:
                self._streams.pop(subscription.owner_id, None)

    def _run(self) -> None:
        since = utcnow() - OVERLAP
        sent: dict[str, Version] = {}
        while True:
            with self._lock:
                if self._count == 0:
                    self._poller = None  # the next join starts a new poller
                    return
            try:
                changed = self._jobs.changed_since(since)
            except Exception:
                log.exception("the live feed could not read the jobs; trying again")
                changed = []
            for job in changed:
                version = (job.updated_at, str(job.status), job.progress)
                if sent.get(job.id) != version:
                    sent[job.id] = version
                    self._publish(job)
            if changed:
                since = max(since, changed[-1].updated_at - OVERLAP)
                sent = {k: v for k, v in sent.items() if v[0] > since}
            time.sleep(self._poll_seconds)

    def _publish(self, job: Job) -> None:
        with self._lock:
            subscriptions = list(self._streams.get(job.owner_id, ()))
        for subscription in subscriptions:
            subscription.jobs.put(job)


bp = Blueprint("live", __name__)


@bp.get("/api/v1/events")
def events() -> Response:
    """The caller's job changes as Server-Sent Events (``event: job``, the job's JSON)."""
    owner = principal()
    feed: JobFeed = current_app.extensions["video2mp3.feed"]
    subscription = feed.join(owner.user_id)
    response = Response(
        stream_with_context(_stream(subscription)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    # Also when the stream never starts (a HEAD request, a client gone at once).
    response.call_on_close(subscription.close)
    return response


def _stream(subscription: Subscription) -> Iterator[str]:
    try:
        yield "retry: 1000\n\n"
        deadline = time.monotonic() + STREAM_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                job = subscription.jobs.get(timeout=min(HEARTBEAT_SECONDS, left))
            except queue.Empty:
                yield ": still here\n\n"
                continue
            if job is None:
                return
            yield _event("job", job_json(job))
    finally:
        subscription.close()


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
