"""The notifier's webhook deliveries (due, done, given up) and its view of each endpoint.

Revision ID: notifier_webhooks_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "notifier_webhooks_0001"
down_revision = None
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    op.create_table(
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
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("webhook_id", sa.String(40), primary_key=True),
        sa.Column("failing_since", Timestamp),
        sa.Column("disabled_at", Timestamp),
    )


def downgrade() -> None:
    op.drop_table("webhook_endpoints")
    op.drop_table("webhook_deliveries")
