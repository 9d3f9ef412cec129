"""One record of deliveries for every channel: emails and webhook calls, by (event, channel).

The webhook deliveries move over with their schedule and history (channel ``webhook:<id>``), so
retries due later survive the upgrade.

Revision ID: notifier_0002
Revises: notifier_webhooks_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "notifier_0002"
down_revision = "notifier_webhooks_0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")

COPIED = [
    "event_id",
    "created_at",
    "next_attempt_at",
    "attempts",
    "last_status",
    "last_excerpt",
    "url",
    "secret",
    "owner_email",
    "body",
]


def upgrade() -> None:
    deliveries = op.create_table(
        "deliveries",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(80), primary_key=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("next_attempt_at", Timestamp),
        sa.Column("holder", sa.String(36)),
        sa.Column("sent_at", Timestamp),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_excerpt", sa.Text),
        sa.Column("url", sa.String(2048)),
        sa.Column("secret", sa.String(100)),
        sa.Column("owner_email", sa.String(254)),
        sa.Column("body", sa.Text),
    )
    assert deliveries is not None
    op.create_index("ix_deliveries_due", "deliveries", ["next_attempt_at"])
    old = sa.table(
        "webhook_deliveries",
        *(sa.column(name) for name in [*COPIED, "webhook_id", "delivered_at"]),
    )
    op.execute(
        deliveries.insert().from_select(
            [*COPIED, "channel", "sent_at"],
            sa.select(
                *(old.c[name] for name in COPIED),
                sa.literal("webhook:", sa.String) + sa.cast(old.c.webhook_id, sa.String),
                old.c.delivered_at,
            ),
        )
    )
    op.drop_index("ix_webhook_deliveries_due", "webhook_deliveries")
    op.drop_table("webhook_deliveries")


def downgrade() -> None:
    """Back to the webhooks' own table; the record of emails sent is dropped."""
    old = op.create_table(
        "webhook_deliveries",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("webhook_id", sa.String(40), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("owner_email", sa.String(254), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("next_attempt_at", Timestamp),
        sa.Column("delivered_at", Timestamp),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_excerpt", sa.Text),
    )
    assert old is not None
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"])
    new = sa.table("deliveries", *(sa.column(name) for name in [*COPIED, "channel", "sent_at"]))
    op.execute(
        old.insert().from_select(
            [*COPIED, "webhook_id", "delivered_at"],
            sa.select(
                *(new.c[name] for name in COPIED),
                sa.func.substr(new.c.channel, len("webhook:") + 1),
                new.c.sent_at,
            ).where(new.c.body.is_not(None)),
        )
    )
    op.drop_table("deliveries")
