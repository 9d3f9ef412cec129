"""``SQLWebhookRepository``: the gateway's webhook registrations (the ``webhooks`` table, which
lives with the jobs because settling a job reads it)."""

from __future__ import annotations

import sqlalchemy as sa

from video2mp3.adapters.sql.engine import translated
from video2mp3.adapters.sql.tables import webhooks
from video2mp3.domain.jobs import utcnow
from video2mp3.domain.webhooks import Webhook
from video2mp3.errors import Conflict


class SQLWebhookRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, webhook: Webhook, *, limit: int) -> None:
        with translated(), self.engine.begin() as conn:
            count = conn.scalar(
                sa.select(sa.func.count())
                .select_from(webhooks)
                .where(webhooks.c.owner_id == webhook.owner_id)
            )
            if int(count or 0) >= limit:
                raise Conflict(f"you have {limit} webhooks already; delete one first")
            webhook.created_at = webhook.created_at or utcnow()
            conn.execute(
                webhooks.insert().values(
                    id=webhook.id,
                    owner_id=webhook.owner_id,
                    url=webhook.url,
                    events=",".join(webhook.events),
                    secret=webhook.secret,
                    created_at=webhook.created_at,
                )
            )

    def list(self, owner_id: int) -> list[Webhook]:
        with translated(), self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(webhooks)
                .where(webhooks.c.owner_id == owner_id)
                .order_by(webhooks.c.created_at, webhooks.c.id)
            ).all()
        return [
            Webhook(
                owner_id=r.owner_id,
                url=r.url,
                events=tuple(r.events.split(",")),
                id=r.id,
                secret=r.secret,
                created_at=r.created_at,
                disabled_at=r.disabled_at,
                disabled_reason=r.disabled_reason,
            )
            for r in rows
        ]

    def delete(self, webhook_id: str, owner_id: int) -> bool:
        with translated(), self.engine.begin() as conn:
            result = conn.execute(
                webhooks.delete().where(
                    webhooks.c.id == webhook_id, webhooks.c.owner_id == owner_id
                )
            )
        return bool(result.rowcount)

    def disable(self, webhook_id: str, reason: str) -> None:
        with translated(), self.engine.begin() as conn:
            conn.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id, webhooks.c.disabled_at.is_(None))
                .values(disabled_at=utcnow(), disabled_reason=reason)
            )
