"""Webhooks port: the gateway's registrations of each user's endpoints.

The gateway keeps each user's endpoints (``WebhookRepository``) and puts the matching ones into
``job.finished``; the notifier records what it delivers to them in ``ports.deliveries``.
"""

from __future__ import annotations

from typing import Protocol

from video2mp3.domain.webhooks import Webhook


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
