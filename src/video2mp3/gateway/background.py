"""The gateway's background work: the outbox relay, the event tracker, the sweep and the orphan
collector.

``Background.loops()`` hands them to whoever runs them, once per deployment unit: the
``gateway-worker`` service (``video2mp3 serve gateway-worker``), or a thread each in ``video2mp3
dev``. Never inside the web workers: gunicorn forks several, and each would relay, track and sweep
again. Every loop survives errors: an outage or a bug in one step is logged and retried with
backoff, never the end of the loop; and within a step, one item that fails (a blob that cannot
be deleted, a chore of the sweep, an event the relay cannot publish) is logged and left for a
later pass while the others go on. Several gateway workers may run at once (the relay and the
sweep claim rows with SKIP LOCKED; tracking is idempotent; deleting a blob twice is harmless).

The sweep fails stalled jobs, deletes videos whose keeping time is over (woken as soon as a job
settles, so by default a video goes once its MP3 is stored) and deletes expired jobs in batches.
The collector deletes blobs that no job references once they are older than a grace period: what
a crash between storing a blob and recording it leaves behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TypeVar

from prometheus_client import Counter, Gauge

from video2mp3.domain.events import ConversionSucceeded, Event, WebhookDisabled
from video2mp3.domain.jobs import utcnow
from video2mp3.errors import Unavailable
from video2mp3.gateway.service import delete_blobs
from video2mp3.ports.blobs import BlobStore
from video2mp3.ports.bus import Bus
from video2mp3.ports.jobs import JobRepository
from video2mp3.ports.webhooks import WebhookRepository
from video2mp3.worker import Loop, repeat

log = logging.getLogger(__name__)
T = TypeVar("T")

# The relay polls the outbox this often when it is idle: web processes do not wake it (they run
# elsewhere), so this bounds the delay between an upload and its request reaching a converter.
# An indexed read of an (almost always) empty table: cheap for the database.
RELAY_INTERVAL = 0.1
SWEEP_INTERVAL = 60.0
COLLECT_INTERVAL = 3600.0
BATCH = 100

STORED = Gauge("video2mp3_stored_bytes", "Bytes in the blob store, by kind", ["kind"])
EXPIRED = Counter("video2mp3_expired_deletions_total", "Deleted when their time was over", ["kind"])
ORPHANS = Counter("video2mp3_orphans_collected_total", "Blobs deleted because no job held them")


def track(jobs: JobRepository, blobs: BlobStore, event: Event) -> bool:
    """Apply a converter event to its job (idempotent, monotonic); return whether it settled
    the job.

    An MP3 that no job holds (its job was deleted meanwhile) is deleted, so no blob is left
    without an owner; one that a job reusing it from the cache holds is kept.
    """
    job, changed = jobs.apply(event)
    if changed:
        log.info("job %s is %s", event.job_id, job.status if job else "?")
    data = event.data
    if (
        isinstance(data, ConversionSucceeded)
        and (job is None or job.mp3_fid != data.mp3_fid)
        and not jobs.referenced({data.mp3_fid})
    ):
        log.info("deleting an MP3 no job holds", extra={"mp3_fid": data.mp3_fid})
        blobs.delete(data.mp3_fid)
    return changed and job is not None and job.finished


class Background:
    """The gateway's loops over its jobs, blobs and bus; ``wake_relay`` after an upload when the
    relay runs in the same process."""

    def __init__(
        self,
        jobs: JobRepository,
        blobs: BlobStore,
        bus: Bus,
        webhooks: WebhookRepository,
        *,
        stalled_after: timedelta,
        orphan_grace: timedelta = timedelta(days=1),
    ) -> None:
        self.jobs, self.blobs, self.bus, self.webhooks = jobs, blobs, bus, webhooks
        self.stalled_after = stalled_after
        self.orphan_grace = orphan_grace
        self._relay_wake = threading.Event()
        self._sweep_wake = threading.Event()
        self._collect_wake = threading.Event()

    def loops(self) -> dict[str, Loop]:
        return {
            "outbox-relay": lambda stop: repeat(
                self._relay, stop, RELAY_INTERVAL, self._relay_wake
            ),
            "sweeper": lambda stop: repeat(self.sweep, stop, SWEEP_INTERVAL, self._sweep_wake),
            "collector": lambda stop: repeat(
                self.collect, stop, COLLECT_INTERVAL, self._collect_wake
            ),
            "tracker": lambda stop: self.bus.consume("gateway", self._track, stop),
        }

    def _relay(self) -> bool:
        return self.jobs.relay_outbox(lambda body: self.bus.publish(Event.from_json(body))) > 0

    def sweep(self) -> bool:
        """One batch of each chore; ``True`` while a batch was full (there may be more)."""
        more = False
        for chore in (self._fail_stalled, self._release_videos, self._expire, self._measure):
            try:
                more = chore() or more
            except Unavailable:
                raise
            except Exception:
                log.exception("the sweep's %s failed; its other chores go on", chore.__name__)
        return more

    def _fail_stalled(self) -> bool:
        stalled = self.jobs.fail_stalled(utcnow() - self.stalled_after)
        if stalled:
            log.warning("failed %d stalled jobs", len(stalled), extra={"job_ids": stalled})
            self.wake_relay()
        return False

    def _release_videos(self) -> bool:
        videos = self.jobs.release_videos(utcnow(), BATCH)
        # No job holds these any more: one left behind is the collector's.
        deleted = _each(videos, self.blobs.delete, "deleting a video whose keeping time is over")
        EXPIRED.labels("video").inc(deleted)
        if videos:
            log.info("deleted %d of %d videos whose keeping time is over", deleted, len(videos))
        return len(videos) == BATCH

    def _expire(self) -> bool:
        expired = {job.id: job for job in self.jobs.expire(utcnow(), BATCH)}
        _each(
            expired,
            lambda job_id: delete_blobs(self.jobs, self.blobs, [expired[job_id]]),
            "deleting the blobs of an expired job",
        )
        EXPIRED.labels("job").inc(len(expired))
        if expired:
            log.info("deleted %d expired jobs", len(expired))
        return len(expired) == BATCH

    def _measure(self) -> bool:
        for kind, size in self.jobs.stored_bytes().items():
            STORED.labels(kind).set(size)
        return False

    def collect(self) -> bool:
        """Delete the blobs older than the grace period that no job references."""
        old = list(self.blobs.stored_before(utcnow() - self.orphan_grace))
        collected = 0
        for start in range(0, len(old), 500):
            batch = old[start : start + 500]
            orphans = sorted(set(batch) - self.jobs.referenced(batch))
            collected += _each(orphans, self._delete_orphan, "deleting a blob no job holds")
        ORPHANS.inc(collected)
        return False

    def _delete_orphan(self, blob_id: str) -> None:
        log.info("deleting a blob no job holds", extra={"blob_id": blob_id})
        self.blobs.delete(blob_id)

    def _track(self, event: Event) -> None:
        if isinstance(event.data, WebhookDisabled):
            self.webhooks.disable(event.data.webhook_id, event.data.reason)
            return
        if track(self.jobs, self.blobs, event):
            self._sweep_wake.set()  # its video may go now

    def wake_relay(self) -> None:
        self._relay_wake.set()


def _each(items: Iterable[T], action: Callable[[T], object], what: str) -> int:
    """Do ``action`` to each item; how many it was done to. An item it fails for is logged and
    left for a later pass, and the others go on; an outage (``Unavailable``) ends it."""
    done = 0
    for item in items:
        try:
            action(item)
        except Unavailable:
            raise
        except Exception:
            log.exception("%s failed for %s; left for later", what, item)
        else:
            done += 1
    return done
