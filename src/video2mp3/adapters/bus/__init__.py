"""Bus adapters: ``RabbitMQBus`` (production) and ``InProcessBus`` (``video2mp3 dev``, tests)."""

from __future__ import annotations

import logging
import re

from video2mp3 import logs
from video2mp3.domain.events import Event
from video2mp3.ports.bus import QUEUES, Handler

log = logging.getLogger(__name__)


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
