"""Webhook ports: the gateway's registrations, and the notifier's schedule of deliveries.

The gateway keeps each user's endpoints (``WebhookRepository``) and puts the matching ones into
``job.finished``; the notifier keeps what it has to deliver, when, and how it went
(``DeliverySchedule``) in its own database, so a retry due in ten hours survives restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from video2mp3.domain.webhooks import Webhook, WebhookTarget


class WebhookRepository(Protocol):
    def add(self, webhook: Webhook, *, limit: int) -> None:
        """Store ``webhook`` unless its owner has ``limit`` already (``Conflict``)."""
        ...

    def list(self, owner_id: int) -> list[Webhook]:
        """The owner's endpoints, oldest first (secrets included: callers leave them out)."""
        ...

    def delete(self, webhook_id: str, owner_id: int) -> bool:
        """Delete the owner's endpoint; ``False`` if there is none."""
        ...

    def disable(self, webhook_id: str, reason: str) -> None:
        """Stop sending to an endpoint; idempotent, a no-op for one deleted meanwhile."""
        ...


@dataclass(frozen=True)
class Delivery:
    """One event to one endpoint, until it is delivered or given up on."""

    event_id: str
    target: WebhookTarget
    owner_email: str
    body: str  # the exact bytes signed, as text: every attempt sends the same
    attempts: int
    first_attempt_at: datetime


class DeliverySchedule(Protocol):
    def schedule(self, delivery: Delivery) -> None:
        """Add a delivery, due now. Idempotent per (event, endpoint): a redelivered
        ``job.finished`` schedules nothing twice."""
        ...

    def due(self, now: datetime, *, limit: int = 20) -> list[Delivery]:
        """Claim up to ``limit`` deliveries due by ``now`` (none that another process claimed
        within the last minute)."""
        ...

    def succeeded(self, delivery: Delivery, status: int, excerpt: str) -> None:
        """Record the endpoint's 2xx: the delivery is done and the endpoint healthy again."""
        ...

    def failed(
        self, delivery: Delivery, status: int | None, excerpt: str, retry_at: datetime | None
    ) -> datetime:
        """Record a failed attempt, due again at ``retry_at`` (``None``: give up). Returns
        since when the endpoint has been failing without a success in between."""
        ...

    def disable(self, webhook_id: str) -> bool:
        """Mark the endpoint disabled; ``True`` the first time only (its owner is emailed once)
        and its pending deliveries are dropped."""
        ...

    def ping(self) -> None:
        """Return if the database answers, else ``Unavailable``."""
        ...
