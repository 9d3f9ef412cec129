"""The jobs and outbox tables.

Revision ID: gateway_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "gateway_0001"
down_revision = None
branch_labels = ("gateway",)
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
STATUS = sa.Enum(
    "queued", "processing", "succeeded", "failed", name="status", native_enum=False, length=16
)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("owner_email", sa.String(254), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("video_fid", sa.String(64)),
        sa.Column("bitrate_kbps", sa.Integer),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("mp3_fid", sa.String(64)),
        sa.Column("mp3_size", sa.BigInteger),
        sa.Column("duration", sa.Float),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_index("ix_jobs_mp3_fid", "jobs", ["mp3_fid"])
    op.create_index("ix_jobs_owner_created", "jobs", ["owner_id", "created_at"])
    op.create_index("ix_jobs_status_updated", "jobs", ["status", "updated_at"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index("ix_outbox_job_id", "outbox", ["job_id"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("jobs")
