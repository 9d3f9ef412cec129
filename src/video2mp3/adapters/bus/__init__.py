"""Bus adapters: ``RabbitMQBus`` (production) and ``InProcessBus`` (``video2mp3 dev``, tests)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from enum import Enum

from video2mp3 import logs
from video2mp3.backoff import Backoff
from video2mp3.domain.events import Event
from video2mp3.errors import Unavailable
from video2mp3.ports.bus import DELIVERY_LIMIT, QUEUES, GiveUp, Handler

log = logging.getLogger(__name__)


class Outcome(Enum):
    ACK = "ack"  # done
    RETRY = "retry"  # hand it back, after retry_delay(): it costs one of DELIVERY_LIMIT
    WAIT = "wait"  # a dependency is down: run it again in place, costing no delivery
    DEAD = "dead"  # dead-letter it


def retry_delay(delivery: int, base: float) -> float:
    """How long to wait before handing back an event that failed its ``delivery``-th delivery.

    Growing delays let a short outage of a dependency pass before the retries run out.
    """
    return min(base * 2.0 ** (delivery - 1), 30.0)


def process(event: Event, delivery: int, handler: Handler, give_up: GiveUp | None) -> Outcome:
    """Run ``handler`` for one delivery and decide what becomes of the event."""
    extra = {"event_type": event.type, "job_id": event.job_id, "delivery": delivery}
    try:
        run_handler(handler, event)
        return Outcome.ACK
    except Unavailable as exc:
        log.warning("%s; retrying in place", exc.message, extra=extra)
        return Outcome.WAIT
    except Exception as exc:
        if delivery < DELIVERY_LIMIT:
            log.warning("handler failed; the event will be retried", exc_info=True, extra=extra)
            return Outcome.RETRY
        log.error("handler failed for the last time; dead-lettering", exc_info=True, extra=extra)
        if give_up is not None:
            _give_up(give_up, event, exc)
        return Outcome.DEAD


def deliver(
    attempt: Callable[[], Outcome], pause: Callable[[float], bool], retry_base: float
) -> Outcome:
    """One delivery: ``attempt`` it, and again in place, with growing pauses, while a dependency
    is unavailable, so an outage of any length spends no delivery and loses no event.

    ``pause(seconds)`` returns False when the consumer is stopping: the event then goes back.
    """
    backoff = Backoff(first=retry_base)
    while (outcome := attempt()) is Outcome.WAIT:
        if not pause(backoff.next()):
            return Outcome.RETRY
    return outcome


def _give_up(give_up: GiveUp, event: Event, error: Exception) -> None:
    try:
        run_handler(lambda e: give_up(e, error), event)
    except Exception:
        log.exception("giving up failed too", extra={"job_id": event.job_id})


def run_handler(handler: Handler, event: Event) -> None:
    """Call ``handler`` with the event's correlation id bound for every log line it writes."""
    token = logs.correlation_id.set(event.correlation_id or event.job_id)
    try:
        handler(event)
    finally:
        logs.correlation_id.reset(token)


def _pattern(binding: str) -> re.Pattern[str]:
    # AMQP topic semantics: '*' is exactly one word, '#' is zero or more.
    words = (
        r"[^.]+" if w == "*" else r".*" if w == "#" else re.escape(w) for w in binding.split(".")
    )
    return re.compile(r"\.".join(words))


def queues_for(event_type: str) -> list[str]:
    """The queues of ``QUEUES`` that an event of ``event_type`` is routed to."""
    return [
        queue
        for queue, bindings in QUEUES.items()
        if any(_pattern(b).fullmatch(event_type) for b in bindings)
    ]
