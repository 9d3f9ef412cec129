"""The gateway's background work: the outbox relay, the event tracker and the stalled-job sweep.

Each runs in a daemon thread of every gateway process and survives errors: an outage or a bug in
one step is logged and retried with backoff, never the end of the loop. ``/readyz`` reports a
thread that died anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from video2mp3.backoff import Backoff
from video2mp3.domain.events import ConversionSucceeded, Event
from video2mp3.domain.jobs import utcnow
from video2mp3.errors import Unavailable
from video2mp3.ports.blobs import BlobStore
from video2mp3.ports.bus import Bus
from video2mp3.ports.jobs import JobRepository

log = logging.getLogger(__name__)

RELAY_INTERVAL = 1.0
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


def repeat(
    step: Callable[[], bool], stop: threading.Event, idle: float, wake: threading.Event
) -> None:
    """Call ``step`` until ``stop``: again at once while it has work, after ``idle`` seconds (or a
    ``wake``) when it has none, with growing delays while it fails."""
    backoff = Backoff(first=idle)
    while not stop.is_set():
        try:
            busy = step()
            backoff.reset()
        except Unavailable as exc:
            log.warning("paused: %s", exc.message)
            busy, idle_for = False, backoff.next()
        except Exception:
            log.exception("background step failed")
            busy, idle_for = False, backoff.next()
        else:
            idle_for = idle
        if not busy:
            wake.wait(idle_for)
            wake.clear()


class Background:
    """The running threads; ``wake_relay`` after an upload, ``check`` for readiness."""

    def __init__(
        self, jobs: JobRepository, blobs: BlobStore, bus: Bus, *, stalled_after: timedelta
    ) -> None:
        self.jobs, self.blobs, self.bus = jobs, blobs, bus
        self.stalled_after = stalled_after
        self._stop = threading.Event()
        self._relay_wake = threading.Event()
        self._sweep_wake = threading.Event()
        loops: dict[str, tuple[Callable[..., None], tuple[object, ...]]] = {
            "outbox-relay": (repeat, (self._relay, self._stop, RELAY_INTERVAL, self._relay_wake)),
            "sweeper": (repeat, (self._sweep, self._stop, SWEEP_INTERVAL, self._sweep_wake)),
            "tracker": (bus.consume, ("gateway", self._track, self._stop)),
        }
        self._threads = [
            threading.Thread(target=target, args=args, name=name, daemon=True)
            for name, (target, args) in loops.items()
        ]
        for thread in self._threads:
            thread.start()

    def _relay(self) -> bool:
        return self.jobs.relay_outbox(lambda body: self.bus.publish(Event.from_json(body))) > 0

    def _sweep(self) -> bool:
        stalled = self.jobs.fail_stalled(utcnow() - self.stalled_after)
        if stalled:
            log.warning("failed %d stalled jobs", len(stalled), extra={"job_ids": stalled})
            self.wake_relay()
        return False

    def _track(self, event: Event) -> None:
        track(self.jobs, self.blobs, event)

    def wake_relay(self) -> None:
        self._relay_wake.set()

    def check(self) -> None:
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead:
            raise Unavailable(f"background threads stopped: {', '.join(dead)}")

    def stop(self) -> None:
        self._stop.set()
        self._relay_wake.set()
        self._sweep_wake.set()
