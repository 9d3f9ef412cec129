"""``SQLDeliveryLog``: the notifier's record of what it sends (``ports.deliveries``), in its own
database, and its view of each webhook endpoint.

One row per ``(event_id, channel)``, emails and webhook calls alike. ``next_attempt_at`` says
from when the row may be claimed: the end of its holder's lease while claimed, the time of the
next try while a webhook call waits for it, ``NULL`` once sent or given up. A claim sets the
holder and pushes that time a ``LEASE`` ahead (``_leased``); marking sets ``sent_at``
(``_sent``): the same columns and the same steps for both channels.

What this cannot close: a process that dies after its send and before the mark leaves a claim
behind; once the lease has lapsed another notifier takes it over and sends again. So a duplicate
needs a crash inside that window of a few milliseconds, at most one per such crash, and it carries
the same Message-ID (email) or ``webhook-id`` as the first, which receivers use to drop it. A
fresh claim held by another process means that one may be sending right now: an email's caller
waits (``Busy`` is ``Unavailable``) rather than risk a second send.

A scheduled row that cannot be read as a delivery (a value missing or of another type, written
by hand or by another version) is given up on where it is claimed: its attempt is counted, why
is kept as its excerpt, and the rows claimed with it are returned all the same.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError, OperationalError

from video2mp3.adapters.sql.engine import ping, translated
from video2mp3.domain.jobs import utcnow
from video2mp3.domain.webhooks import EXCERPT_BYTES, MAX_URL, WebhookTarget
from video2mp3.ports.deliveries import Busy, Claim, Delivery, webhook_channel

log = logging.getLogger(__name__)

# Longer than a send takes in practice (each SMTP step gives up after 30 s, a webhook call after
# 5 s). A send that drags on past it may be made a second time by another notifier.
LEASE = timedelta(seconds=90)

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
metadata = sa.MetaData()

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(80), primary_key=True),  # "email", "webhook:<id>"
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("next_attempt_at", Timestamp),  # claimable from then on; NULL once settled
    sa.Column("holder", sa.String(36)),  # the process whose claim it is or was
    sa.Column("sent_at", Timestamp),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_excerpt", sa.Text),
    # What a scheduled delivery sends (webhooks); NULL for an email, composed from its event.
    sa.Column("url", sa.String(MAX_URL)),
    sa.Column("secret", sa.String(100)),
    sa.Column("owner_email", sa.String(254)),
    sa.Column("body", sa.Text),
    sa.Index("ix_deliveries_due", "next_attempt_at"),
)

endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("webhook_id", sa.String(40), primary_key=True),
    sa.Column("failing_since", Timestamp),  # NULL while healthy
    sa.Column("disabled_at", Timestamp),
)


class SQLDeliveryLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # Tells this process's claims from others': a claim of ours is never someone else's send.
        self.holder = str(uuid.uuid4())

    def _leased(self, now: datetime) -> dict[str, Any]:
        return {"holder": self.holder, "next_attempt_at": now + LEASE}

    def claim(self, event_id: str, channel: str) -> Claim:
        now, key = utcnow(), _key(event_id, channel)
        with translated():
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        deliveries.insert().values(
                            event_id=event_id,
                            channel=channel,
                            created_at=now,
                            attempts=0,
                            **self._leased(now),
                        )
                    )
                return Claim.TAKEN
            except IntegrityError:
                pass  # claimed before: by us, by a process that died, or by one still sending
            free = deliveries.c.next_attempt_at.is_not(None) & (
                (deliveries.c.next_attempt_at <= now) | (deliveries.c.holder == self.holder)
            )
            with self.engine.begin() as conn:
                if conn.execute(
                    deliveries.update().where(key, free).values(self._leased(now))
                ).rowcount:
                    return Claim.TAKEN
                sent_at = conn.scalar(sa.select(deliveries.c.sent_at).where(key))
        if sent_at is not None:
            return Claim.DONE
        raise Busy(f"another notifier is delivering {event_id} on {channel}")

    def mark_sent(self, event_id: str, channel: str) -> None:
        with translated(), self.engine.begin() as conn:
            conn.execute(
                _sent(_key(event_id, channel), utcnow()).values(attempts=deliveries.c.attempts + 1)
            )

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
                        channel=delivery.channel,
                        created_at=utcnow(),
                        next_attempt_at=utcnow(),
                        attempts=0,
                        url=target.url,
                        secret=target.secret,
                        owner_email=delivery.owner_email,
                        body=delivery.body,
                    )
                )
        except IntegrityError:
            pass  # scheduled before: a redelivered event

    def due(self, now: datetime, *, limit: int = 20) -> list[Delivery]:
        found: list[Delivery] = []
        with translated(), self.engine.begin() as conn:
            keys = conn.execute(
                sa.select(deliveries.c.event_id, deliveries.c.channel)
                # Only what can be sent from the row: a lapsed email claim waits for its event.
                .where(deliveries.c.next_attempt_at <= now, deliveries.c.body.is_not(None))
                .order_by(deliveries.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for event_id, channel in keys:
                key = _key(event_id, channel)
                conn.execute(deliveries.update().where(key).values(self._leased(now)))
                try:  # one by one: a row that cannot be read is that row's problem only
                    found.append(_delivery(conn.execute(sa.select(deliveries).where(key)).one()))
                except OperationalError:
                    raise
                except Exception as exc:
                    _give_up_unreadable(conn, event_id, channel, exc)
        return found

    def succeeded(self, delivery: Delivery, status: int, excerpt: str) -> None:
        with translated(), self.engine.begin() as conn:
            conn.execute(
                _sent(_key(delivery.event_id, delivery.channel), utcnow()).values(
                    attempts=delivery.attempts + 1, last_status=status, last_excerpt=excerpt
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
                .where(_key(delivery.event_id, delivery.channel))
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
                        deliveries.c.channel == webhook_channel(webhook_id),
                        deliveries.c.next_attempt_at.is_not(None),
                    )
                    .values(next_attempt_at=None)
                )
        return bool(changed)

    def ping(self) -> None:
        ping(self.engine)

    def record(self, event_id: str, channel: str) -> sa.Row[tuple[object, ...]] | None:
        """One delivery's row, as recorded: for operators and tests."""
        with translated(), self.engine.connect() as conn:
            return conn.execute(sa.select(deliveries).where(_key(event_id, channel))).one_or_none()


def _key(event_id: str, channel: str) -> sa.ColumnElement[bool]:
    return (deliveries.c.event_id == event_id) & (deliveries.c.channel == channel)


def _sent(key: sa.ColumnElement[bool], now: datetime) -> sa.Update:
    """Mark a claimed delivery sent; a no-op for one marked already."""
    return (
        deliveries.update()
        .where(key, deliveries.c.sent_at.is_(None))
        .values(sent_at=now, next_attempt_at=None)
    )


def _give_up_unreadable(conn: sa.Connection, event_id: str, channel: str, exc: Exception) -> None:
    log.error(
        "giving up on a delivery whose record cannot be read: %s",
        exc,
        extra={"event_id": event_id, "channel": channel},
    )
    conn.execute(
        deliveries.update()
        .where(_key(event_id, channel))
        .values(
            next_attempt_at=None,
            attempts=deliveries.c.attempts + 1,
            last_status=None,
            last_excerpt=f"not sent: its record cannot be read ({exc})"[:EXCERPT_BYTES],
        )
    )


def _delivery(row: sa.Row[Any]) -> Delivery:
    """The delivery a scheduled row records; ``ValueError`` saying what in it cannot be read."""
    prefix = webhook_channel("")
    if not row.channel.startswith(prefix) or row.channel == prefix:
        raise ValueError(f"channel {row.channel!r} is not a webhook's")
    for name in ("url", "secret", "owner_email", "body"):
        if not isinstance(getattr(row, name), str):
            raise ValueError(f"its {name} is {getattr(row, name)!r}, not text")
    if not isinstance(row.attempts, int) or row.attempts < 0:
        raise ValueError(f"its attempts are {row.attempts!r}, not a count")
    if not isinstance(row.created_at, datetime):
        raise ValueError(f"its created_at is {row.created_at!r}, not a time")
    return Delivery(
        event_id=row.event_id,
        target=WebhookTarget(row.channel.removeprefix(prefix), row.url, row.secret),
        owner_email=row.owner_email,
        body=row.body,
        attempts=row.attempts,
        first_attempt_at=row.created_at,
    )
