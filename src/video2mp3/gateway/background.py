"""The gateway's background work: the outbox relay, the event tracker and the stalled-job sweep.

``Background.loops()`` hands them to whoever runs them, once per deployment unit: the
``gateway-worker`` service (``video2mp3 serve gateway-worker``), or a thread each in ``video2mp3
dev``. Never inside the web workers: gunicorn forks several, and each would relay, track and sweep
again. Every loop survives errors: an outage or a bug in one step is logged and retried with
backoff, never the end of the loop. Several gateway workers may run at once (the relay and the
sweep lock rows with SKIP LOCKED; tracking is idempotent).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from video2mp3.domain.events import ConversionSucceeded, Event, WebhookDisabled
from video2mp3.domain.jobs import utcnow
from video2mp3.ports.blobs import BlobStore
from video2mp3.ports.bus import Bus
from video2mp3.ports.jobs import JobRepository
from video2mp3.ports.webhooks import WebhookRepository
from video2mp3.worker import Loop, repeat

log = logging.getLogger(__name__)

# The relay polls the outbox this often when it is idle: web processes do not wake it (they run
# elsewhere), so this bounds the delay between an upload and its request reaching a converter.
# An indexed read of an (almost always) empty table: cheap for the database.
RELAY_INTERVAL = 0.1
SWEEP_INTERVAL = 60.0


def track(jobs: JobRepository, blobs: BlobStore, event: Event) -> None:
    """Apply a converter event to its job (idempotent, monotonic).

    An MP3 that no job takes (the job was deleted meanwhile, or a redelivered request was
    converted twice) is deleted, so no blob is left without an owner.
    """
    job, changed = jobs.apply(event)
    if changed:
        log.info("job %s is %s", event.job_id, job.status if job else "?")
    data = event.data
    if isinstance(data, ConversionSucceeded) and (job is None or job.mp3_fid != data.mp3_fid):
        log.info("deleting an MP3 no job holds", extra={"mp3_fid": data.mp3_fid})
        blobs.delete(data.mp3_fid)


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
    ) -> None:
        self.jobs, self.blobs, self.bus, self.webhooks = jobs, blobs, bus, webhooks
        self.stalled_after = stalled_after
        self._relay_wake = threading.Event()
        self._sweep_wake = threading.Event()

    def loops(self) -> dict[str, Loop]:
        return {
            "outbox-relay": lambda stop: repeat(
                self._relay, stop, RELAY_INTERVAL, self._relay_wake
            ),
            "sweeper": lambda stop: repeat(self._sweep, stop, SWEEP_INTERVAL, self._sweep_wake),
            "tracker": lambda stop: self.bus.consume("gateway", self._track, stop),
        }

    def _relay(self) -> bool:
        return self.jobs.relay_outbox(lambda body: self.bus.publish(Event.from_json(body))) > 0

    def _sweep(self) -> bool:
        stalled = self.jobs.fail_stalled(utcnow() - self.stalled_after)
        if stalled:
            log.warning("failed %d stalled jobs", len(stalled), extra={"job_ids": stalled})
            self.wake_relay()
        return False

    def _track(self, event: Event) -> None:
        if isinstance(event.data, WebhookDisabled):
            self.webhooks.disable(event.data.webhook_id, event.data.reason)
            return
        track(self.jobs, self.blobs, event)

    def wake_relay(self) -> None:
        self._relay_wake.set()
