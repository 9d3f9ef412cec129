"""The webhooks table: each user's endpoints for job.succeeded and job.failed.

Revision ID: gateway_0004_webhooks
Revises: gateway_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "gateway_0004_webhooks"
down_revision = "gateway_0003"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.String(200), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("disabled_at", Timestamp),
        sa.Column("disabled_reason", sa.Text),
    )
    op.create_index("ix_webhooks_owner_id", "webhooks", ["owner_id"])


def downgrade() -> None:
    op.drop_table("webhooks")
