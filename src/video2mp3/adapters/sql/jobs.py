"""``SQLJobRepository``: the gateway's jobs and outbox tables (its storage queries, for
retention, quotas and the orphan collector, are in ``storage``).

``Job`` is a plain domain class; ``start_mappers`` maps it onto the jobs table (SQLAlchemy's
imperative mapping) when the first repository is built, never at import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, registry, sessionmaker
from sqlalchemy.orm.exc import UnmappedClassError

from video2mp3.adapters.sql.engine import ping, translated
from video2mp3.adapters.sql.reservations import (
    Reservations,
    drop_reservation,
    lock_owner,
    owner_counts,
)
from video2mp3.adapters.sql.storage import StorageQueries, cached
from video2mp3.adapters.sql.tables import jobs, metadata, outbox, reservations, webhooks
from video2mp3.domain.events import Event
from video2mp3.domain.jobs import Job, Status, stalled_event, utcnow
from video2mp3.domain.storage import Limits, Retention
from video2mp3.domain.webhooks import WebhookTarget, event_type
from video2mp3.errors import InvalidEvent, NotPublished, Unavailable

log = logging.getLogger(__name__)
__all__ = ["SQLJobRepository", "metadata", "start_mappers"]

_mapper = registry()

# How long the relay of one process leaves an event it could not publish (for any reason but an
# outage) before it tries it again: long enough not to retry it at every pass, and the events
# after it are relayed meanwhile, however many such events there are.
SET_ASIDE = timedelta(minutes=1)


def start_mappers() -> None:
    """Map ``Job`` onto the jobs table, once per process."""
    try:
        sa.inspect(Job)
    except (UnmappedClassError, sa.exc.NoInspectionAvailable):
        _mapper.map_imperatively(Job, jobs)


class SQLJobRepository(StorageQueries, Reservations):
    def __init__(self, engine: sa.Engine, retention: Retention | None = None) -> None:
        start_mappers()
        self.engine = engine
        self.retention = retention or Retention()
        self._session: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        # Under MySQL's default REPEATABLE READ, the relay's locking read takes gap locks that
        # would hold every upload's insert for as long as a publish takes.
        self._relay_engine = (
            engine.execution_options(isolation_level="READ COMMITTED")
            if engine.dialect.name == "mysql"
            else engine
        )
        self._set_aside: dict[int, datetime] = {}  # outbox row id -> when to try it again

    def add(self, job: Job, event: Event) -> None:
        """Insert ``job`` and queue ``event`` for publishing, atomically; a job whose upload has
        ended (its size known) drops its reservation in the same transaction."""
        with translated(), self._session.begin() as session:
            session.add(job)
            _enqueue(session, event)
            if job.video_size is not None:
                drop_reservation(session, job.id)

    def record_upload(self, job: Job) -> None:
        """Store the video's size, SHA-256 and cache key, and nothing else of ``job``; its
        reservation goes in the same transaction (the size now counts)."""
        with translated(), self._session.begin() as session:
            drop_reservation(session, job.id)
            session.execute(
                jobs.update()
                .where(jobs.c.id == job.id)
                .values(
                    video_size=job.video_size,
                    video_sha256=job.video_sha256,
                    cache_key=job.cache_key,
                )
            )

    def get(self, job_id: str, owner_id: int) -> Job | None:
        """The job if it exists and belongs to ``owner_id``."""
        with translated(), self._session() as session:
            return session.scalar(sa.select(Job).filter_by(id=job_id, owner_id=owner_id))

    def by_mp3(self, mp3_fid: str, owner_id: int) -> Job | None:
        # The owner's jobs may share one MP3 (the cache): the one kept longest answers.
        with translated(), self._session() as session:
            return session.scalar(
                sa.select(Job)
                .filter_by(mp3_fid=mp3_fid, owner_id=owner_id)
                .order_by(jobs.c.expires_at.is_(None).desc(), jobs.c.expires_at.desc())
                .limit(1)
            )

    def add_from_cache(self, job: Job, correlation_id: str | None, limits: Limits) -> bool:
        """Settle ``job`` with the MP3 of a live succeeded job of its owner with its cache key
        and insert it with its ``job.finished``, within ``limits``, atomically; ``False``,
        writing nothing, when there is none.

        The source row is locked until the new job is committed, so a concurrent delete of the
        source either happens first (no hit) or sees the new reference.
        """
        with translated(), self._session.begin() as session:
            lock_owner(session, job.owner_id)
            source = session.scalar(
                cached(job.cache_key).where(jobs.c.owner_id == job.owner_id).with_for_update()
            )
            if source is None:
                return False
            job.reuse(source, self.retention)
            self._settle(session, job, correlation_id, limits)
        return True

    def add_copy(self, job: Job, source: Job, correlation_id: str | None, limits: Limits) -> None:
        """Settle ``job`` as ``source``'s conversion with its own MP3 (``job.mp3_fid`` and
        ``mp3_size``, stored already) and insert it with its ``job.finished``, within
        ``limits``, atomically."""
        mp3 = job.mp3_fid, job.mp3_size
        job.reuse(source, self.retention)
        job.mp3_fid, job.mp3_size = mp3
        with translated(), self._session.begin() as session:
            lock_owner(session, job.owner_id)
            self._settle(session, job, correlation_id, limits)

    def _settle(
        self, session: Session, job: Job, correlation_id: str | None, limits: Limits
    ) -> None:
        """Insert the settled ``job`` in place of its reservation; with none (nothing was
        uploaded) it is a new job. The owner's lock is held."""
        held = session.scalar(sa.select(reservations.c.id).where(reservations.c.id == job.id))
        size = (job.video_size or 0 if job.video_fid else 0) + (job.mp3_size or 0)
        active, stored = owner_counts(session, job.owner_id, job.id)
        limits.admit(active, stored, size, size, new_job=held is None)
        drop_reservation(session, job.id)
        session.add(job)
        _enqueue(session, job.finished_event(correlation_id, _targets(session, job)))

    def page(self, owner_id: int, *, limit: int, offset: int) -> tuple[list[Job], int]:
        """One page of the owner's live jobs, newest first, and the owner's total."""
        mine = sa.and_(
            jobs.c.owner_id == owner_id,
            sa.or_(jobs.c.expires_at.is_(None), jobs.c.expires_at > utcnow()),
        )
        with translated(), self._session() as session:
            page = session.scalars(
                sa.select(Job)
                .where(mine)
                .order_by(jobs.c.created_at.desc(), jobs.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = session.scalar(sa.select(sa.func.count()).select_from(jobs).where(mine))
        return list(page), int(total or 0)

    def changed_since(self, since: datetime, limit: int = 1000) -> list[Job]:
        """Jobs updated after ``since``, oldest change first."""
        with translated(), self._session() as session:
            # Naming every status lets ix_jobs_status_updated serve this as a few range scans.
            return list(
                session.scalars(
                    sa.select(Job)
                    .where(jobs.c.status.in_(list(Status)), jobs.c.updated_at > since)
                    .order_by(jobs.c.updated_at)
                    .limit(limit)
                ).all()
            )

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
                job.stamp(self.retention)
                _enqueue(session, job.finished_event(event.correlation_id, _targets(session, job)))
        return job, changed

    def relay_outbox(self, publish: Callable[[str], None], batch: int = 100) -> int:
        """Publish queued events in order and delete each once published; return how many.

        Rows are locked with SKIP LOCKED so that several gateway processes can relay at once. A
        crash between publish and commit republishes the event: consumers are idempotent. An
        outage (``Unavailable``) ends the batch; an event that cannot be published otherwise
        (``NotPublished`` included: that is about this event) is left in the outbox and set
        aside for ``SET_ASIDE``, and the others go on.
        """
        now = utcnow()
        self._set_aside = {row: until for row, until in self._set_aside.items() if until > now}
        query = sa.select(outbox.c.id, outbox.c.body).order_by(outbox.c.id).limit(batch)
        if self._set_aside:
            query = query.where(outbox.c.id.not_in(list(self._set_aside)))
        published: list[int] = []
        failure: Unavailable | None = None
        with translated(), self._relay_engine.begin() as conn:
            for row_id, body in conn.execute(query.with_for_update(skip_locked=True)).all():
                try:
                    publish(body)
                except InvalidEvent as exc:  # written by a newer gateway: leave it to that one
                    self._set_aside[row_id] = now + SET_ASIDE
                    log.warning("outbox row %s left for a newer gateway: %s", row_id, exc.message)
                    continue
                except NotPublished as exc:  # this event's: no queue takes it, or not now
                    self._set_aside[row_id] = now + SET_ASIDE
                    log.error("outbox row %s set aside: %s", row_id, exc.message)
                    continue
                except Unavailable as exc:
                    failure = exc
                    break
                except Exception:
                    self._set_aside[row_id] = now + SET_ASIDE
                    log.exception("outbox row %s set aside: it could not be published", row_id)
                    continue
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
                job.stamp(self.retention)
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
