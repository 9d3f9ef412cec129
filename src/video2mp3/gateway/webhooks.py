"""The webhook use cases, free of HTTP: register an endpoint (its URL parsed as a delivery will
parse it and checked against SSRF, its secret made here and shown once), list and delete a user's
endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from video2mp3.domain.webhooks import EVENTS, MAX_PER_USER, Webhook
from video2mp3.errors import InvalidRequest, NotFound
from video2mp3.gateway.tokens import Principal
from video2mp3.ports.webhooks import WebhookRepository
from video2mp3.ssrf import UrlGuard


@dataclass
class Webhooks:
    repository: WebhookRepository
    guard: UrlGuard

    def register(self, owner: Principal, url: object, events: object = None) -> Webhook:
        """A new endpoint for ``events`` (default: all). ``InvalidRequest`` for a bad body or a
        URL that cannot be delivered to (``InvalidUrl``), ``Refused`` for a URL that may not be
        called, ``Conflict`` past the limit per user. The URL is kept as given."""
        chosen = _events(events)
        destination = self.guard.check(url)
        webhook = Webhook(owner_id=owner.user_id, url=destination.text, events=chosen)
        self.repository.add(webhook, limit=MAX_PER_USER)
        return webhook

    def list(self, owner: Principal) -> list[Webhook]:
        return self.repository.list(owner.user_id)

    def delete(self, owner: Principal, webhook_id: str) -> None:
        if not self.repository.delete(webhook_id, owner.user_id):
            raise NotFound(f"no webhook {webhook_id}")


def _events(events: object) -> tuple[str, ...]:
    if events is None:
        return EVENTS
    if (
        not isinstance(events, Sequence)
        or isinstance(events, str)
        or not events
        or any(e not in EVENTS for e in events)
    ):
        raise InvalidRequest(f"events must be a non-empty list among {', '.join(EVENTS)}")
    return tuple(e for e in EVENTS if e in events)


def webhook_json(webhook: Webhook, *, with_secret: bool = False) -> dict[str, Any]:
    """A webhook as the API shows it; the secret only right after registration."""
    body: dict[str, Any] = {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "created_at": webhook.created_at.isoformat(timespec="seconds") + "Z"
        if webhook.created_at
        else None,
        "disabled": webhook.disabled_at is not None,
        "disabled_reason": webhook.disabled_reason,
    }
    if with_secret:
        body["secret"] = webhook.secret
    return body
