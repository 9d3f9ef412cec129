"""``SQLDeliverySchedule``: the notifier's webhook deliveries and its view of each endpoint.

A delivery row is keyed by (event, endpoint): inserting it twice is a no-op, so a redelivered
``job.finished`` schedules nothing twice and the row is the record of what was sent. A sender
claims due rows with SKIP LOCKED and pushes them a ``LEASE`` into the future while it sends: a
notifier that dies mid-send leaves them to be retried a minute later, never lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError

from video2mp3.adapters.sql.engine import ping, translated
from video2mp3.domain.jobs import utcnow
from video2mp3.domain.webhooks import WebhookTarget
from video2mp3.ports.webhooks import Delivery

LEASE = timedelta(seconds=60)  # longer than one send can take (a 5 s timeout per step)

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
metadata = sa.MetaData()

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("webhook_id", sa.String(40), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("owner_email", sa.String(254), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("next_attempt_at", Timestamp),  # NULL once delivered or given up
    sa.Column("delivered_at", Timestamp),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_excerpt", sa.Text),
    sa.Index("ix_webhook_deliveries_due", "next_attempt_at"),
)

endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("webhook_id", sa.String(40), primary_key=True),
    sa.Column("failing_since", Timestamp),  # NULL while healthy
    sa.Column("disabled_at", Timestamp),
)


class SQLDeliverySchedule:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def schedule(self, delivery: Delivery) -> None:
        target = delivery.target
        try:
            with translated(), self.engine.begin() as conn:
                if conn.scalar(
                    sa.select(endpoints.c.disabled_at).where(endpoints.c.webhook_id == target.id)
                ):
                    return  # disabled meanwhile: the gateway has not heard yet
                conn.execute(
                    deliveries.insert().values(
                        event_id=delivery.event_id,
                        webhook_id=target.id,
                        url=target.url,
                        secret=target.secret,
                        owner_email=delivery.owner_email,
                        body=delivery.body,
                        attempts=0,
                        created_at=utcnow(),
                        next_attempt_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # scheduled before: a redelivered event

    def due(self, now: datetime, *, limit: int = 20) -> list[Delivery]:
        with translated(), self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.next_attempt_at <= now)
                .order_by(deliveries.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                conn.execute(
                    deliveries.update()
                    .where(_key(row.event_id, row.webhook_id))
                    .values(next_attempt_at=now + LEASE)
                )
        return [
            Delivery(
                event_id=r.event_id,
                target=WebhookTarget(r.webhook_id, r.url, r.secret),
                owner_email=r.owner_email,
                body=r.body,
                attempts=r.attempts,
                first_attempt_at=r.created_at,
            )
            for r in rows
        ]

    def succeeded(self, delivery: Delivery, status: int, excerpt: str) -> None:
        now = utcnow()
        with translated(), self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(_key(delivery.event_id, delivery.target.id))
                .values(
                    attempts=delivery.attempts + 1,
                    next_attempt_at=None,
                    delivered_at=now,
                    last_status=status,
                    last_excerpt=excerpt,
                )
            )
            conn.execute(
                endpoints.update()
                .where(endpoints.c.webhook_id == delivery.target.id)
                .values(failing_since=None)
            )

    def failed(
        self, delivery: Delivery, status: int | None, excerpt: str, retry_at: datetime | None
    ) -> datetime:
        now = utcnow()
        with translated(), self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(_key(delivery.event_id, delivery.target.id))
                .values(
                    attempts=delivery.attempts + 1,
                    next_attempt_at=retry_at,
                    last_status=status,
                    last_excerpt=excerpt,
                )
            )
            key = endpoints.c.webhook_id == delivery.target.id
            since = conn.scalar(sa.select(endpoints.c.failing_since).where(key).with_for_update())
            if since is None:
                try:
                    with conn.begin_nested():
                        conn.execute(endpoints.insert().values(webhook_id=delivery.target.id))
                except IntegrityError:
                    pass  # the row exists, healthy
                conn.execute(endpoints.update().where(key).values(failing_since=now))
                since = now
        return since

    def disable(self, webhook_id: str) -> bool:
        with translated(), self.engine.begin() as conn:
            changed = conn.execute(
                endpoints.update()
                .where(endpoints.c.webhook_id == webhook_id, endpoints.c.disabled_at.is_(None))
                .values(disabled_at=utcnow())
            ).rowcount
            if changed:
                conn.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.webhook_id == webhook_id,
                        deliveries.c.next_attempt_at.is_not(None),
                    )
                    .values(next_attempt_at=None)
                )
        return bool(changed)

    def ping(self) -> None:
        ping(self.engine)

    def deliveries(self, event_id: str) -> list[sa.Row[tuple[object, ...]]]:
        """The rows of one event's deliveries: for operators and tests."""
        with translated(), self.engine.connect() as conn:
            return list(
                conn.execute(sa.select(deliveries).where(deliveries.c.event_id == event_id))
            )


def _key(event_id: str, webhook_id: str) -> sa.ColumnElement[bool]:
    return (deliveries.c.event_id == event_id) & (deliveries.c.webhook_id == webhook_id)
