"""Message bus port: publish events, consume them from a named queue with at-least-once delivery.

``QUEUES`` is the topology every adapter declares: which event types reach which service's queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from video2mp3.domain.events import Event

# queue -> binding keys (topic patterns over event types)
QUEUES: dict[str, tuple[str, ...]] = {
    "converter": ("conversion.requested",),
    "segments": ("segment.requested",),
    "gateway": (
        "conversion.progress",
        "conversion.succeeded",
        "conversion.failed",
        "webhook.disabled",
    ),
    "notifier": ("job.finished",),
}

# Deliveries of one message before it is dead-lettered instead of redelivered again.
DELIVERY_LIMIT = 5

# How many deliveries of a queue one consumer handles at once (its prefetch). A converter takes
# one job at a time so that the others go to idle converters, and one segment per consumer (it
# runs one consumer of segments per core); the gateway's tracker applies
# events under row locks, idempotently, so it runs several at once to keep up with many
# converters; the notifier's sends are independent of each other.
CONCURRENCY: dict[str, int] = {"converter": 1, "segments": 1, "gateway": 8, "notifier": 4}

Handler = Callable[[Event], None]
# Called once when an event has failed its last delivery, before it is dead-lettered.
GiveUp = Callable[[Event, Exception], None]


class Bus(Protocol):
    def publish(self, event: Event, *, transient: bool = False) -> None:
        """Publish ``event`` under its type; return once the bus has taken responsibility for it.

        Raises ``NotPublished`` if the event certainly did not get through (no queue takes it, or
        the broker refused it), ``Unavailable`` if the bus cannot be reached (it may have).
        ``transient`` events (progress) may be lost on a broker restart. Safe from any thread.
        """
        ...

    def consume(
        self, queue: str, handler: Handler, stop: threading.Event, give_up: GiveUp | None = None
    ) -> None:
        """Deliver each event of ``queue`` to ``handler`` until ``stop`` is set.

        Up to ``CONCURRENCY[queue]`` events are handled at once, each in its own thread. An event
        is acknowledged only after ``handler`` returns. If ``handler`` raises ``Unavailable``, it
        is called again in place with growing pauses, for as long as the
        outage lasts. If it raises anything else, the event is redelivered after a growing
        delay, at most ``DELIVERY_LIMIT`` times in all; after the last failure ``give_up`` is
        called and the event is dead-lettered. A body that is not a valid event is dead-lettered
        at once. Reconnects after a broker outage.
        """
        ...

    def consumers(self, queue: str) -> int:
        """How many consumers ``queue`` has now, in every process (each takes
        ``CONCURRENCY[queue]`` at once); ``Unavailable`` if the bus cannot be reached."""
        ...

    def ping(self) -> None:
        """Return if the bus is reachable, else raise ``Unavailable``."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...
