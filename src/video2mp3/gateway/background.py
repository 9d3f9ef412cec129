"""The gateway's two background loops: the outbox relay and the tracker of converter events."""

from __future__ import annotations

import logging
import threading

from video2mp3.domain.events import ConversionSucceeded, Event
from video2mp3.errors import Unavailable
from video2mp3.gateway.jobs import JobRepository
from video2mp3.ports.blobs import BlobStore
from video2mp3.ports.bus import Bus

log = logging.getLogger(__name__)


class OutboxRelay:
    """Moves events from the outbox table to the bus; ``wake()`` after a write skips the wait."""

    def __init__(self, jobs: JobRepository, bus: Bus, interval: float = 1.0) -> None:
        self.jobs = jobs
        self.bus = bus
        self.interval = interval
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        delay = self.interval
        while not stop.is_set():
            try:
                relayed = self.jobs.relay_outbox(
                    lambda body: self.bus.publish(Event.from_json(body))
                )
                delay = self.interval
            except Unavailable as exc:
                log.warning("outbox relay paused: %s", exc.message)
                relayed, delay = 0, min(delay * 2, 30.0)
            if not relayed:
                self._wake.wait(delay)
                self._wake.clear()


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


def start(jobs: JobRepository, blobs: BlobStore, bus: Bus, relay: OutboxRelay) -> threading.Event:
    """Start the relay and the tracker in daemon threads; set the returned event to stop them."""
    stop = threading.Event()
    threading.Thread(target=relay.run, args=(stop,), name="outbox-relay", daemon=True).start()
    threading.Thread(
        target=bus.consume,
        args=("gateway", lambda event: track(jobs, blobs, event), stop),
        name="tracker",
        daemon=True,
    ).start()
    return stop
