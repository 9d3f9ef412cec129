"""The jobs repository's hold on per-user limits: reservations for uploads under way.

Every check of an owner's limits runs in the transaction that acts on it, after writing the
owner's row in ``owner_locks``: MySQL locks that row until the commit, and SQLite (which begins
every transaction with BEGIN IMMEDIATE) holds the database's write lock. So two uploads of one
owner are never both admitted on the same count. An upload under way holds a reservation keyed
by its job's id: its bytes count against the quota (it grows as the stream goes), and it counts
as an active job until the job row exists. A reservation that has not been touched for ``STALE``
(its gateway died) counts no more.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from video2mp3.adapters.sql.engine import translated
from video2mp3.adapters.sql.tables import jobs, owner_locks, reservations
from video2mp3.domain.jobs import Status, utcnow
from video2mp3.domain.storage import Limits

STALE = timedelta(hours=1)


class Reservations:
    engine: sa.Engine
    _session: sessionmaker[Session]

    def reserve(
        self, job_id: str, owner_id: int, limits: Limits, *, at_least: int, wanted: int
    ) -> int:
        """Reserve (or grow the reservation of) job ``job_id`` to at least ``at_least`` bytes,
        ``wanted`` if they fit; return the bytes reserved. A new reservation counts as a job."""
        with translated(), self._session.begin() as session:
            lock_owner(session, owner_id)
            held = session.scalar(sa.select(reservations.c.id).where(reservations.c.id == job_id))
            active, stored = owner_counts(session, owner_id, job_id)
            granted = limits.admit(active, stored, at_least, wanted, new_job=held is None)
            if held is None:
                session.execute(
                    reservations.insert().values(
                        id=job_id, owner_id=owner_id, bytes=granted, updated_at=utcnow()
                    )
                )
            else:
                session.execute(
                    reservations.update()
                    .where(reservations.c.id == job_id)
                    .values(bytes=granted, updated_at=utcnow())
                )
        return granted

    def release(self, job_id: str) -> None:
        """Drop the reservation of job ``job_id``, if any."""
        with translated(), self._session.begin() as session:
            drop_reservation(session, job_id)


def lock_owner(session: Session, owner_id: int) -> None:
    """Write the owner's lock row first: the rest of the transaction holds it."""
    now = utcnow()
    statement: sa.Executable
    if session.get_bind().dialect.name == "mysql":
        statement = (
            mysql.insert(owner_locks)
            .values(owner_id=owner_id, locked_at=now)
            .on_duplicate_key_update(locked_at=now)
        )
    else:
        statement = (
            sqlite.insert(owner_locks)
            .values(owner_id=owner_id, locked_at=now)
            .on_conflict_do_update(index_elements=["owner_id"], set_={"locked_at": now})
        )
    session.execute(statement)
    cutoff = now - STALE
    session.execute(
        reservations.delete().where(
            reservations.c.owner_id == owner_id, reservations.c.updated_at < cutoff
        )
    )


def owner_counts(session: Session, owner_id: int, job_id: str) -> tuple[int, int]:
    """The owner's active jobs and stored bytes, reservations included but that of ``job_id``."""
    active = sa.case((jobs.c.status.in_([Status.QUEUED, Status.PROCESSING]), 1), else_=0)
    videos = sa.case((jobs.c.video_fid.is_not(None), sa.func.coalesce(jobs.c.video_size, 0)))
    mp3s = sa.case((jobs.c.mp3_fid.is_not(None), sa.func.coalesce(jobs.c.mp3_size, 0)))
    job_active, job_bytes = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(active), 0),
            sa.func.coalesce(sa.func.sum(videos), 0) + sa.func.coalesce(sa.func.sum(mp3s), 0),
        ).where(jobs.c.owner_id == owner_id)
    ).one()
    no_row = ~sa.exists().where(jobs.c.id == reservations.c.id)
    held, held_bytes = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((no_row, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(reservations.c.bytes), 0),
        ).where(reservations.c.owner_id == owner_id, reservations.c.id != job_id)
    ).one()
    return int(job_active) + int(held), int(job_bytes) + int(held_bytes)


def drop_reservation(session: Session, job_id: str) -> None:
    session.execute(reservations.delete().where(reservations.c.id == job_id))
