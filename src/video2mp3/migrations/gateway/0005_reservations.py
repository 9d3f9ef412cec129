"""Per-user limits held atomically: uploads under way reserve their bytes, and one lock row per
owner serialises the checks.

Revision ID: gateway_0005_reservations
Revises: gateway_0004_webhooks
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "gateway_0005_reservations"
down_revision = "gateway_0004_webhooks"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_index("ix_reservations_owner_id", "reservations", ["owner_id"])
    op.create_table(
        "owner_locks",
        sa.Column("owner_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("locked_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("owner_locks")
    op.drop_table("reservations")
