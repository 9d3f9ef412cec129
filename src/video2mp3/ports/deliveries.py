"""Deliveries port: what the notifier has sent, so that each event is acted on once per channel.

The bus delivers at least once. A sender claims ``(event_id, channel)`` before it sends and marks
it sent afterwards, before the message is acknowledged: a redelivered event finds the mark and is
not sent again. Channels are ``"email"`` and, for webhooks, ``"webhook:<id>"``.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from video2mp3.errors import Unavailable


class Claim(Enum):
    TAKEN = "taken"  # ours to send
    DONE = "done"  # sent already: nothing to do


class Busy(Unavailable):
    """Another process holds a fresh claim on this delivery and may be sending it right now."""

    code = "delivery_in_progress"


class DeliveryLog(Protocol):
    def claim(self, event_id: str, channel: str) -> Claim:
        """Claim the delivery of ``event_id`` on ``channel``.

        ``TAKEN``: send it, then call ``mark_sent``. ``DONE``: it was sent. Raises ``Busy`` while
        another process holds a fresh claim, ``Unavailable`` if the store cannot be reached.
        Idempotent for one process: claiming again what it holds is ``TAKEN`` again.
        """
        ...

    def mark_sent(self, event_id: str, channel: str) -> None:
        """Record that ``event_id`` went out on ``channel``. Idempotent; ``Unavailable``."""
        ...

    def ping(self) -> None:
        """Return if the store answers, else raise ``Unavailable``."""
        ...
