"""``SQLDeliveryLog``: the notifier's record of what it has sent, in its own database.

One row per ``(event_id, channel)``, claimed before the send and marked sent after it (see
``ports.deliveries``).

What this cannot close: a process that dies after its send and before the mark leaves a claim
behind; once the claim is older than ``LEASE`` another notifier takes it over and sends again.
So a duplicate needs a crash inside that window of a few milliseconds, at most one duplicate per
such crash, and it carries the same Message-ID as the first, which receiving systems use to drop
it. A claim younger than the lease held by another process means that one may be sending right
now: the caller waits (``Busy`` is ``Unavailable``) rather than risk a second send.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from video2mp3.adapters.sql.engine import ping, translated
from video2mp3.ports.deliveries import Busy, Claim

# Longer than a send takes in practice (seconds; each SMTP step gives up after 30 s). A send that
# drags on past it may be made a second time by another notifier, with the same Message-ID.
LEASE = timedelta(seconds=90)

metadata = sa.MetaData()

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(80), primary_key=True),
    sa.Column("holder", sa.String(36), nullable=False),
    sa.Column("claimed_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime),
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class SQLDeliveryLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # Tells this process's claims from others': a claim of ours is never someone else's send.
        self.holder = str(uuid.uuid4())

    def claim(self, event_id: str, channel: str) -> Claim:
        key = (deliveries.c.event_id == event_id) & (deliveries.c.channel == channel)
        with translated():
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        deliveries.insert().values(
                            event_id=event_id,
                            channel=channel,
                            holder=self.holder,
                            claimed_at=_now(),
                        )
                    )
                return Claim.TAKEN
            except IntegrityError:
                pass  # claimed before: by us, by a process that died, or by one still sending
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(deliveries.c.holder, deliveries.c.claimed_at, deliveries.c.sent_at)
                    .where(key)
                    .with_for_update()
                ).one()
                if row.sent_at is not None:
                    return Claim.DONE
                if row.holder != self.holder and row.claimed_at > _now() - LEASE:
                    raise Busy(f"another notifier is delivering {event_id} on {channel}")
                conn.execute(
                    deliveries.update().where(key).values(holder=self.holder, claimed_at=_now())
                )
                return Claim.TAKEN

    def ping(self) -> None:
        ping(self.engine)

    def mark_sent(self, event_id: str, channel: str) -> None:
        key = (deliveries.c.event_id == event_id) & (deliveries.c.channel == channel)
        with translated(), self.engine.begin() as conn:
            conn.execute(deliveries.update().where(key).values(sent_at=_now()))
