"""``SQLJobRepository``: the gateway's jobs and outbox tables.

``Job`` is a plain domain class; ``start_mappers`` maps it onto the jobs table (SQLAlchemy's
imperative mapping) when the first repository is built, never at import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Session, registry, sessionmaker
from sqlalchemy.orm.exc import UnmappedClassError

from video2mp3.adapters.sql.engine import ping, translated
from video2mp3.domain.events import Event
from video2mp3.domain.jobs import Job, Status, stalled_event, utcnow
from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.webhooks import WebhookTarget, event_type
from video2mp3.errors import InvalidEvent, Unavailable

log = logging.getLogger(__name__)

# Microseconds on MySQL too: the newest-first order and the stalled-job cutoff depend on them.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


class Options(sa.TypeDecorator[ConversionOptions]):
    """``ConversionOptions`` stored as the JSON of the options a user chose."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: ConversionOptions | None, dialect: object) -> str:
        return json.dumps((value or ConversionOptions()).to_dict())

    def process_result_value(self, value: str | None, dialect: object) -> ConversionOptions:
        return ConversionOptions.parse(json.loads(value or "{}"))


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
    sa.Index("ix_jobs_owner_created", "owner_id", "created_at"),
    sa.Index("ix_jobs_status_updated", "status", "updated_at"),
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

# A user's webhook endpoints (``SQLWebhookRepository``); read here too, because settling a job
# puts its owner's endpoints into ``job.finished`` in the same transaction.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner_id", sa.Integer, nullable=False, index=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.String(200), nullable=False),  # comma-separated
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("disabled_at", Timestamp),
    sa.Column("disabled_reason", sa.Text),
)

_mapper = registry()


def start_mappers() -> None:
    """Map ``Job`` onto the jobs table, once per process."""
    try:
        sa.inspect(Job)
    except (UnmappedClassError, sa.exc.NoInspectionAvailable):
        _mapper.map_imperatively(Job, jobs)


class SQLJobRepository:
    def __init__(self, engine: sa.Engine) -> None:
        start_mappers()
        self.engine = engine
        self._session: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        # Under MySQL's default REPEATABLE READ, the relay's locking read takes gap locks that
        # would hold every upload's insert for as long as a publish takes.
        self._relay_engine = (
            engine.execution_options(isolation_level="READ COMMITTED")
            if engine.dialect.name == "mysql"
            else engine
        )

    def add(self, job: Job, event: Event) -> None:
        """Insert ``job`` and queue ``event`` for publishing, atomically."""
        with translated(), self._session.begin() as session:
            session.add(job)
            _enqueue(session, event)

    def get(self, job_id: str, owner_id: int) -> Job | None:
        """The job if it exists and belongs to ``owner_id``."""
        with translated(), self._session() as session:
            return session.scalar(sa.select(Job).filter_by(id=job_id, owner_id=owner_id))

    def by_mp3(self, mp3_fid: str, owner_id: int) -> Job | None:
        with translated(), self._session() as session:
            return session.scalar(sa.select(Job).filter_by(mp3_fid=mp3_fid, owner_id=owner_id))

    def page(self, owner_id: int, *, limit: int, offset: int) -> tuple[list[Job], int]:
        """One page of the owner's jobs, newest first, and the owner's total."""
        with translated(), self._session() as session:
            page = session.scalars(
                sa.select(Job)
                .filter_by(owner_id=owner_id)
                .order_by(jobs.c.created_at.desc(), jobs.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = session.scalar(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.owner_id == owner_id)
            )
        return list(page), int(total or 0)

    def delete(self, job_id: str, owner_id: int) -> Job | None:
        """Delete and return the owner's job, or ``None`` if there is none."""
        with translated(), self._session.begin() as session:
            job = session.scalar(
                sa.select(Job).filter_by(id=job_id, owner_id=owner_id).with_for_update()
            )
            if job is not None:
                session.delete(job)
                # A request not relayed yet would convert a video that is gone.
                session.execute(outbox.delete().where(outbox.c.job_id == job_id))
        return job

    def apply(self, event: Event) -> tuple[Job | None, bool]:
        """Fold ``event`` into its job under a row lock; return the job and whether it changed.

        The change that finishes a job also queues its ``job.finished``, in the same
        transaction: exactly one per job, however often converters report.
        """
        with translated(), self._session.begin() as session:
            job = session.scalar(sa.select(Job).filter_by(id=event.job_id).with_for_update())
            changed = job is not None and job.apply(event)
            if changed and job is not None and job.finished:
                _enqueue(session, job.finished_event(event.correlation_id, _targets(session, job)))
        return job, changed

    def relay_outbox(self, publish: Callable[[str], None], batch: int = 100) -> int:
        """Publish queued events in order and delete each once published; return how many.

        Rows are locked with SKIP LOCKED so that several gateway processes can relay at once. A
        crash between publish and commit republishes the event: consumers are idempotent.
        """
        published: list[int] = []
        failure: Unavailable | None = None
        with translated(), self._relay_engine.begin() as conn:
            rows = conn.execute(
                sa.select(outbox.c.id, outbox.c.body)
                .order_by(outbox.c.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            for row_id, body in rows:
                try:
                    publish(body)
                except InvalidEvent as exc:  # written by a newer gateway: leave it to that one
                    log.warning("outbox row %s left for a newer gateway: %s", row_id, exc.message)
                    continue
                except Unavailable as exc:
                    failure = exc
                    break
                published.append(row_id)
            if published:
                conn.execute(outbox.delete().where(outbox.c.id.in_(published)))
        if failure is not None:
            raise failure
        return len(published)

    def fail_stalled(self, before: datetime) -> list[str]:
        """Fail the jobs still ``processing`` with no news since ``before``; return their ids.

        Each gets its ``job.finished`` (code ``stalled``) in the outbox, so the owner is told.
        This catches what retries cannot: a request dead-lettered after its converter died
        repeatedly, or an event lost while the jobs database was down.
        """
        with translated(), self._session.begin() as session:
            stalled = session.scalars(
                sa.select(Job)
                .where(jobs.c.status == Status.PROCESSING, jobs.c.updated_at < before)
                .with_for_update(skip_locked=True)
            ).all()
            for job in stalled:
                job.apply(stalled_event(job))
                _enqueue(session, job.finished_event(None, _targets(session, job)))
        return [job.id for job in stalled]

    def ping(self) -> None:
        ping(self.engine)

    def outbox_depth(self) -> int:
        with translated(), self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)


def _targets(session: Session, job: Job) -> tuple[WebhookTarget, ...]:
    """The owner's enabled endpoints that subscribe to how ``job`` ended."""
    wanted = event_type(job.status)
    rows = session.execute(
        sa.select(webhooks.c.id, webhooks.c.url, webhooks.c.secret, webhooks.c.events)
        .where(webhooks.c.owner_id == job.owner_id, webhooks.c.disabled_at.is_(None))
        .order_by(webhooks.c.created_at)
    ).all()
    return tuple(
        WebhookTarget(r.id, r.url, r.secret) for r in rows if wanted in r.events.split(",")
    )


def _enqueue(session: Session, event: Event) -> None:
    body = event.to_json().decode()
    session.execute(outbox.insert().values(job_id=event.job_id, body=body, created_at=utcnow()))
