"""The gateway's tables: jobs, and the outbox of events that go with them."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from video2mp3.domain.jobs import Status
from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.webhooks import MAX_URL
from video2mp3.errors import InvalidRequest

log = logging.getLogger(__name__)

# Microseconds on MySQL too: the newest-first order and the stalled-job cutoff depend on them.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


class Options(sa.TypeDecorator[ConversionOptions]):
    """``ConversionOptions`` stored as the JSON of the options a user chose.

    Read as far as they can be: options that another version wrote, or that a rule made stricter
    since refuses, are left out (with a warning), so that such a row is read like any other
    rather than failing every query that meets it (the sweep's batches, the owner's list).
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: ConversionOptions | None, dialect: object) -> str:
        return json.dumps((value or ConversionOptions()).to_dict())

    def process_result_value(self, value: str | None, dialect: object) -> ConversionOptions:
        try:
            stored = json.loads(value or "{}")
        except ValueError:
            stored = None
        if isinstance(stored, dict):
            with contextlib.suppress(InvalidRequest):
                return ConversionOptions.parse(stored)
        kept: dict[str, Any] = {}
        for name, option in stored.items() if isinstance(stored, dict) else ():
            with contextlib.suppress(InvalidRequest):
                kept = ConversionOptions.parse({**kept, name: option}).to_dict()
        log.warning("stored options read without what no longer reads", extra={"options": value})
        return ConversionOptions.parse(kept)


metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.Integer, nullable=False),
    sa.Column("owner_email", sa.String(254), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("video_fid", sa.String(64)),
    sa.Column("options", Options, nullable=False),
    sa.Column(
        "status",
        sa.Enum(
            Status, native_enum=False, length=16, values_callable=lambda e: [s.value for s in e]
        ),
        nullable=False,
    ),
    sa.Column("progress", sa.Float, nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("mp3_fid", sa.String(64), index=True),
    sa.Column("mp3_size", sa.BigInteger),
    sa.Column("duration", sa.Float),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("video_sha256", sa.String(64)),
    sa.Column("video_size", sa.BigInteger),
    sa.Column("cache_key", sa.String(64)),
    sa.Column("expires_at", Timestamp),
    sa.Column("video_expires_at", Timestamp),
    sa.Index("ix_jobs_owner_created", "owner_id", "created_at"),
    sa.Index("ix_jobs_status_updated", "status", "updated_at"),
    # (key, owner): a same-owner lookup never reads another owner's rows.
    sa.Index("ix_jobs_cache_key", "cache_key", "owner_id"),
    sa.Index("ix_jobs_expires_at", "expires_at"),
    sa.Index("ix_jobs_video_expires_at", "video_expires_at"),
    sa.Index("ix_jobs_video_fid", "video_fid"),
)

# Uploads under way, one per job id (the job row may not exist yet): their bytes, and a job each
# until the job row exists, count against the owner's limits (``adapters/sql/reservations.py``).
reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.Integer, nullable=False, index=True),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# One row per owner, written first by every transaction that checks or changes what the owner
# may store: it serialises them (a row lock on MySQL; SQLite's BEGIN IMMEDIATE already does).
owner_locks = sa.Table(
    "owner_locks",
    metadata,
    sa.Column("owner_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("locked_at", Timestamp, nullable=False),
)

# Events waiting to be published: written in the same transaction as the job they belong to.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(36), nullable=False, index=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

# A user's webhook endpoints (``SQLWebhookRepository``); read by the jobs repository too,
# because settling a job puts its owner's endpoints into ``job.finished`` in the same transaction.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner_id", sa.Integer, nullable=False, index=True),
    sa.Column("url", sa.String(MAX_URL), nullable=False),
    sa.Column("events", sa.String(200), nullable=False),  # comma-separated
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("disabled_at", Timestamp),
    sa.Column("disabled_reason", sa.Text),
)
