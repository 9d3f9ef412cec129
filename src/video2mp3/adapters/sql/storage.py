"""The jobs repository's storage queries: retention batches, cache lookups, blob references,
usage.

A mixin of ``SQLJobRepository`` over the same tables, kept apart so that each module stays
about one thing. Batches claim their rows with SKIP LOCKED: several gateway workers can sweep
at once, and none is handed a row another holds.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from video2mp3.adapters.sql.engine import translated
from video2mp3.adapters.sql.tables import jobs
from video2mp3.domain.jobs import Job, Status, utcnow
from video2mp3.ports.jobs import Usage


class StorageQueries:
    engine: sa.Engine
    _session: sessionmaker[Session]

    def release_videos(self, now: datetime, batch: int = 100) -> list[str]:
        """Forget the videos of up to ``batch`` settled jobs whose keeping time is over; return
        their blob ids for the caller to delete. Rows are claimed with SKIP LOCKED, so several
        sweepers never hand out one video twice."""
        with translated(), self._session.begin() as session:
            due = session.scalars(
                sa.select(Job)
                .where(jobs.c.video_expires_at <= now, jobs.c.video_fid.is_not(None))
                .order_by(jobs.c.video_expires_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            fids = [job.video_fid for job in due if job.video_fid]
            for job in due:
                job.video_fid = job.video_expires_at = None
        return fids

    def expire(self, now: datetime, batch: int = 100) -> list[Job]:
        """Delete up to ``batch`` jobs whose time is over and return them; the caller deletes
        their blobs that no job references any more. SKIP LOCKED: no job is deleted twice."""
        with translated(), self._session.begin() as session:
            due = session.scalars(
                sa.select(Job)
                .where(jobs.c.expires_at <= now)
                .order_by(jobs.c.expires_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            for job in due:
                session.delete(job)
        return list(due)

    def find_cached(self, cache_key: str | None) -> Job | None:
        """A live succeeded job of any owner with ``cache_key``."""
        with translated(), self._session() as session:
            return session.scalar(cached(cache_key))

    def referenced(self, blob_ids: Collection[str]) -> set[str]:
        """Which of ``blob_ids`` some job holds, as its video or its MP3."""
        if not blob_ids:
            return set()
        ids = list(blob_ids)
        with translated(), self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.video_fid, jobs.c.mp3_fid).where(
                    sa.or_(jobs.c.video_fid.in_(ids), jobs.c.mp3_fid.in_(ids))
                )
            ).all()
        return {fid for row in rows for fid in row if fid in blob_ids}

    def usage(self, owner_id: int | None = None) -> list[Usage]:
        """What each owner (or only ``owner_id``) stores and has running, by owner id."""
        active = sa.case((jobs.c.status.in_([Status.QUEUED, Status.PROCESSING]), 1), else_=0)
        videos = sa.case((jobs.c.video_fid.is_not(None), sa.func.coalesce(jobs.c.video_size, 0)))
        mp3s = sa.case((jobs.c.mp3_fid.is_not(None), sa.func.coalesce(jobs.c.mp3_size, 0)))
        query = (
            sa.select(
                jobs.c.owner_id,
                sa.func.max(jobs.c.owner_email),
                sa.func.count(),
                sa.func.sum(active),
                sa.func.coalesce(sa.func.sum(videos), 0),
                sa.func.coalesce(sa.func.sum(mp3s), 0),
            )
            .group_by(jobs.c.owner_id)
            .order_by(jobs.c.owner_id)
        )
        if owner_id is not None:
            query = query.where(jobs.c.owner_id == owner_id)
        with translated(), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Usage(int(o), str(e), int(n), int(a), int(v), int(m)) for o, e, n, a, v, m in rows]

    def stored_bytes(self) -> dict[str, int]:
        """Bytes in the blob store by kind, each shared MP3 counted once."""
        mp3s = (
            sa.select(sa.func.max(jobs.c.mp3_size).label("size"))
            .where(jobs.c.mp3_fid.is_not(None))
            .group_by(jobs.c.mp3_fid)
            .subquery()
        )
        with translated(), self.engine.connect() as conn:
            video = conn.scalar(
                sa.select(sa.func.sum(jobs.c.video_size)).where(jobs.c.video_fid.is_not(None))
            )
            mp3 = conn.scalar(sa.select(sa.func.sum(mp3s.c.size)))
        return {"video": int(video or 0), "mp3": int(mp3 or 0)}


def cached(cache_key: str | None) -> sa.Select[Job]:
    """A live succeeded job with ``cache_key`` (of any owner: narrow it)."""
    live = sa.or_(jobs.c.expires_at.is_(None), jobs.c.expires_at > utcnow())
    return (
        sa.select(Job)
        .where(
            jobs.c.cache_key == cache_key,
            jobs.c.status == Status.SUCCEEDED,
            jobs.c.mp3_fid.is_not(None),
            live,
        )
        .limit(1)
    )
