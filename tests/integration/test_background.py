"""The gateway worker's sweep and orphan collector on a real database and blob store: one blob
that cannot be deleted, one job row that cannot be read as it was written, or one chore that
fails holds up none of the rest of the work."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from video2mp3 import migrations
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.adapters.bus.inprocess import InProcessBus
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.jobs import SQLJobRepository
from video2mp3.adapters.sql.tables import jobs as jobs_table
from video2mp3.adapters.sql.webhooks import SQLWebhookRepository
from video2mp3.domain.jobs import Job, Status, utcnow
from video2mp3.gateway.background import Background

LONG_AGO = utcnow() - timedelta(days=30)


class StuckBlobStore(LocalBlobStore):
    """A store in which some blobs cannot be deleted (a file the process may not remove, say)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.stuck: set[str] = set()

    def delete(self, blob_id: str) -> None:
        if blob_id in self.stuck:
            raise PermissionError(13, "Permission denied", blob_id)
        super().delete(blob_id)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = create_engine(f"sqlite:///{tmp_path}/jobs.db")
    migrations.upgrade(engine, "gateway")
    return engine


@pytest.fixture
def blobs(tmp_path: Path) -> StuckBlobStore:
    return StuckBlobStore(tmp_path / "blobs")


@pytest.fixture
def jobs(engine: sa.Engine) -> SQLJobRepository:
    return SQLJobRepository(engine)


@pytest.fixture
def background(jobs: SQLJobRepository, blobs: StuckBlobStore, engine: sa.Engine) -> Background:
    webhooks = SQLWebhookRepository(engine)
    return Background(
        jobs,
        blobs,
        InProcessBus(),
        webhooks,
        stalled_after=timedelta(hours=1),
        orphan_grace=timedelta(0),
    )


def stored(blobs: LocalBlobStore, name: str) -> str:
    return blobs.put(iter([name.encode()]), filename=name, content_type="video/mp4").id


def job(jobs: SQLJobRepository, engine: sa.Engine, blobs: LocalBlobStore, **row: Any) -> Job:
    """A job with a stored video, its row then changed as ``row`` says."""
    made = Job(owner_id=1, owner_email="a@example.com", filename="a.mp4")
    made.video_fid = stored(blobs, made.id)
    jobs.add(made, made.requested_event(None))
    jobs.relay_outbox(lambda body: None)
    options = row.pop("options", None)
    with engine.begin() as conn:
        conn.execute(jobs_table.update().where(jobs_table.c.id == made.id).values(**row))
        if options is not None:  # as text, past the column's type: as another version wrote it
            update = sa.text("UPDATE jobs SET options = :options WHERE id = :id")
            conn.execute(update, {"options": options, "id": made.id})
    return made


def present(blobs: LocalBlobStore, *fids: str | None) -> list[bool]:
    return [fid is not None and (blobs.root / fid).exists() for fid in fids]


def status(engine: sa.Engine, made: Job) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(sa.select(jobs_table.c.status).where(jobs_table.c.id == made.id))


def test_a_blob_that_cannot_be_deleted_holds_up_none_of_the_sweep(
    background: Background, jobs: SQLJobRepository, engine: sa.Engine, blobs: StuckBlobStore
) -> None:
    done = {"status": Status.SUCCEEDED, "video_expires_at": LONG_AGO}
    first, second, third = (job(jobs, engine, blobs, **done) for _ in range(3))
    expired = job(jobs, engine, blobs, status=Status.SUCCEEDED, expires_at=LONG_AGO)
    blobs.stuck = {second.video_fid or ""}
    assert not background.sweep()
    assert present(blobs, first.video_fid, second.video_fid, third.video_fid) == [
        False,
        True,
        False,
    ]
    assert present(blobs, expired.video_fid) == [False]  # the expiry ran all the same
    assert status(engine, expired) is None
    blobs.stuck = set()
    background.collect()  # what the sweep could not delete, no job holds: the collector's
    assert present(blobs, second.video_fid) == [False]


def test_a_blob_that_cannot_be_deleted_holds_up_none_of_the_collection(
    background: Background, blobs: StuckBlobStore
) -> None:
    orphans = [stored(blobs, f"orphan-{n}") for n in range(5)]
    blobs.stuck = {orphans[2]}
    assert not background.collect()
    assert present(blobs, *orphans) == [False, False, True, False, False]


def test_a_job_whose_options_no_longer_read_is_swept_like_any_other(
    background: Background, jobs: SQLJobRepository, engine: sa.Engine, blobs: StuckBlobStore
) -> None:
    """Options a later version wrote, or a rule that has since become stricter, are read as
    far as they can be, so such a job is failed when it stalls and its video goes in time."""
    silent = {"status": Status.PROCESSING, "updated_at": LONG_AGO}
    odd = job(jobs, engine, blobs, options='{"bitrate": 192, "from_the_future": 1}', **silent)
    plain = job(jobs, engine, blobs, **silent)
    assert not background.sweep()
    assert (status(engine, odd), status(engine, plain)) == ("failed", "failed")
    kept = jobs.get(odd.id, 1)
    assert kept is not None
    assert kept.options.to_dict() == {"bitrate": 192}


def test_a_chore_that_fails_holds_up_none_of_the_others(
    background: Background,
    jobs: SQLJobRepository,
    engine: sa.Engine,
    blobs: StuckBlobStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(before: object) -> list[str]:
        raise KeyError("a bug")

    monkeypatch.setattr(jobs, "fail_stalled", broken)
    released = job(jobs, engine, blobs, status=Status.SUCCEEDED, video_expires_at=LONG_AGO)
    expired = job(jobs, engine, blobs, status=Status.SUCCEEDED, expires_at=LONG_AGO)
    assert not background.sweep()
    assert present(blobs, released.video_fid, expired.video_fid) == [False, False]
    assert status(engine, expired) is None
