"""Bounded storage: each job's video hash and size, cache key, and expiry times.

Revision ID: gateway_0003
Revises: gateway_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "gateway_0003"
down_revision = "gateway_0002"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("video_sha256", sa.String(64)))
        batch.add_column(sa.Column("video_size", sa.BigInteger))
        batch.add_column(sa.Column("cache_key", sa.String(64)))
        batch.add_column(sa.Column("expires_at", Timestamp))
        batch.add_column(sa.Column("video_expires_at", Timestamp))
    op.create_index("ix_jobs_cache_key", "jobs", ["cache_key", "owner_id"])
    op.create_index("ix_jobs_expires_at", "jobs", ["expires_at"])
    op.create_index("ix_jobs_video_expires_at", "jobs", ["video_expires_at"])
    op.create_index("ix_jobs_video_fid", "jobs", ["video_fid"])


def downgrade() -> None:
    for name in ("ix_jobs_video_fid", "ix_jobs_video_expires_at", "ix_jobs_expires_at"):
        op.drop_index(name, "jobs")
    op.drop_index("ix_jobs_cache_key", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("video_expires_at", "expires_at", "cache_key", "video_size", "video_sha256"):
            batch.drop_column(column)
