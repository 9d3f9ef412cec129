"""Deliveries port: the notifier's one record of what it sends, per event and channel.

The bus delivers at least once. Every effect the notifier has (the owner's email, each webhook
call) is a delivery keyed by ``(event_id, channel)``, with ``EMAIL`` or ``webhook_channel(id)``
as the channel, and goes through the same three steps: claim it, send it, mark it sent. A claim
is a lease: while it is fresh nobody else sends; once it has lapsed (its holder died) another
process may take the delivery over. An email is claimed while its event is handled, before the
message is acknowledged; a webhook call is scheduled with everything it sends, and its sender
claims it when due, so its retries (over a day) outlive restarts of the notifier and the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from video2mp3.domain.webhooks import WebhookTarget
from video2mp3.errors import Unavailable

EMAIL = "email"


def webhook_channel(webhook_id: str) -> str:
    return f"webhook:{webhook_id}"


class Claim(Enum):
    TAKEN = "taken"  # ours to send
    DONE = "done"  # sent already: nothing to do


class Busy(Unavailable):
    """Another process holds a fresh claim on this delivery and may be sending it right now."""

    code = "delivery_in_progress"


@dataclass(frozen=True)
class Delivery:
    """One event to one webhook endpoint, until it is delivered or given up on."""

    event_id: str
    target: WebhookTarget
    owner_email: str
    body: str  # the exact bytes signed, as text: every attempt sends the same
    attempts: int
    first_attempt_at: datetime

    @property
    def channel(self) -> str:
        return webhook_channel(self.target.id)


class DeliveryLog(Protocol):
    def claim(self, event_id: str, channel: str) -> Claim:
        """Claim the delivery of ``event_id`` on ``channel``, recording it if it is new.

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


class DeliverySchedule(DeliveryLog, Protocol):
    """The same record, for deliveries that carry what they send and are retried on a schedule."""

    def schedule(self, delivery: Delivery) -> None:
        """Record a delivery, due now. Idempotent per (event, channel): a redelivered
        ``job.finished`` schedules nothing twice; nothing for a disabled endpoint."""
        ...

    def due(self, now: datetime, *, limit: int = 20) -> list[Delivery]:
        """Claim up to ``limit`` scheduled deliveries due by ``now``, none with a fresh claim.
        A row among them that cannot be read as a delivery is given up on (its attempt counted,
        why kept as its excerpt, logged) and left out; the others are returned all the same."""
        ...

    def succeeded(self, delivery: Delivery, status: int, excerpt: str) -> None:
        """Mark the delivery sent with the endpoint's 2xx; the endpoint is healthy again."""
        ...

    def failed(
        self, delivery: Delivery, status: int | None, excerpt: str, retry_at: datetime | None
    ) -> datetime:
        """Release the claim, due again at ``retry_at`` (``None``: give up). Returns since when
        the endpoint has been failing without a success in between."""
        ...

    def disable(self, webhook_id: str) -> bool:
        """Mark the endpoint disabled; ``True`` the first time only (its owner is emailed once)
        and its pending deliveries are dropped."""
        ...
