"""The deliveries table: what the notifier has sent, by event and channel.

Revision ID: notifier_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "notifier_0001"
down_revision = None
branch_labels = ("notifier",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(80), primary_key=True),
        sa.Column("holder", sa.String(36), nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime),
    )


def downgrade() -> None:
    op.drop_table("deliveries")
