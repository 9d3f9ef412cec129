"""The jobs repository's storage queries behave the same on SQLite and MySQL: cache lookups,
retention batches that several sweepers can run at once, references, usage."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from video2mp3 import migrations
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.jobs import SQLJobRepository
from video2mp3.domain.events import ConversionSucceeded, Event, Owner
from video2mp3.domain.jobs import Job, Status, utcnow
from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.storage import Limits, Retention, cache_key
from video2mp3.errors import QuotaExceeded

KEY = cache_key("a" * 64, ConversionOptions())


def queued(owner: int = 1, key: str | None = KEY, video: str | None = "video") -> Job:
    return Job(
        owner_id=owner,
        owner_email=f"{owner}@example.com",
        filename="a.mp4",
        video_fid=video,
        video_size=100,
        cache_key=key,
    )


def converted(jobs: SQLJobRepository, job: Job, mp3: str = "mp3", size: int = 10) -> Job:
    jobs.add(job, job.requested_event(None))
    owner = Owner(job.owner_id, job.owner_email)
    settled, _ = jobs.apply(Event(job.id, ConversionSucceeded(mp3, size, 1.0, owner, "a.mp4")))
    assert settled is not None
    return settled


class StorageContract:
    @pytest.fixture
    def engine(self) -> sa.Engine:
        raise NotImplementedError

    @pytest.fixture
    def repository(self, engine: sa.Engine) -> Callable[[Retention], SQLJobRepository]:
        migrations.upgrade(engine, "gateway")
        return lambda retention: SQLJobRepository(engine, retention)

    @pytest.fixture
    def jobs(self, repository: Callable[[Retention], SQLJobRepository]) -> SQLJobRepository:
        return repository(Retention())

    def test_a_cache_hit_reuses_a_live_mp3_of_the_same_owner(self, jobs: SQLJobRepository) -> None:
        source = converted(jobs, queued())
        hit = queued(video=None)
        assert jobs.add_from_cache(hit, "corr", Limits())
        stored = jobs.get(hit.id, 1)
        assert stored is not None
        assert (stored.status, stored.mp3_fid, stored.mp3_size) == (Status.SUCCEEDED, "mp3", 10)
        assert stored.expires_at is not None
        assert stored.expires_at > utcnow()
        assert not jobs.add_from_cache(queued(owner=2), None, Limits())
        assert source.id != hit.id

    def test_another_owners_conversion_is_found_and_copied(self, jobs: SQLJobRepository) -> None:
        source = converted(jobs, queued())
        assert jobs.find_cached("other") is None
        found = jobs.find_cached(KEY)
        assert found is not None
        assert found.id == source.id
        copy = queued(owner=2)
        copy.mp3_fid, copy.mp3_size = "copy", 12
        with pytest.raises(QuotaExceeded):  # its video and its copy of the MP3 count
            jobs.add_copy(copy, found, None, Limits(quota_bytes=111))
        jobs.add_copy(copy, found, None, Limits(quota_bytes=112))
        stored = jobs.get(copy.id, 2)
        assert stored is not None
        assert (stored.status, stored.mp3_fid, stored.mp3_size) == (Status.SUCCEEDED, "copy", 12)

    def test_an_expired_or_failed_job_is_no_cache_source(
        self, repository: Callable[[Retention], SQLJobRepository]
    ) -> None:
        brief = repository(Retention(keep_mp3s_for=timedelta(microseconds=1)))
        converted(brief, queued())
        assert not brief.add_from_cache(queued(), None, Limits())

    def test_videos_go_once_settled_and_each_is_handed_out_once(
        self, jobs: SQLJobRepository
    ) -> None:
        settled = [converted(jobs, queued(video=f"v{i}"), mp3=f"m{i}") for i in range(30)]
        waiting = queued(video="still converting")
        jobs.add(waiting, waiting.requested_event(None))
        handed = in_threads(lambda: jobs.release_videos(utcnow(), batch=4))
        assert sorted(handed) == sorted(f"v{i}" for i in range(30))
        assert all(jobs.get(j.id, 1).video_fid is None for j in settled)  # type: ignore[union-attr]
        assert jobs.release_videos(utcnow()) == []
        assert jobs.referenced({"still converting"}) == {"still converting"}

    def test_expired_jobs_are_deleted_once_in_batches(
        self, repository: Callable[[Retention], SQLJobRepository]
    ) -> None:
        jobs = repository(Retention(keep_mp3s_for=timedelta(hours=1)))
        made = {converted(jobs, queued(), mp3=f"m{i}").id for i in range(30)}
        kept = repository(Retention(keep_mp3s_for=None))
        forever = converted(kept, queued(), mp3="forever")
        assert jobs.expire(utcnow()) == []  # not yet
        later = utcnow() + timedelta(hours=2)
        deleted = in_threads(lambda: [j.id for j in jobs.expire(later, batch=4)])
        assert sorted(deleted) == sorted(made)
        assert jobs.get(forever.id, 1) is not None

    def test_references_usage_and_stored_bytes(self, jobs: SQLJobRepository) -> None:
        converted(jobs, queued(owner=1, video="v1"), mp3="shared", size=10)
        jobs.add_from_cache(queued(owner=1, video=None), None, Limits())
        running = queued(owner=2, video="v2")
        jobs.add(running, running.requested_event(None))
        assert jobs.referenced({"shared", "v2", "gone"}) == {"shared", "v2"}
        assert jobs.referenced(set()) == set()
        usage = {u.owner_id: u for u in jobs.usage()}
        assert (usage[1].jobs, usage[1].active_jobs, usage[1].mp3_bytes) == (2, 0, 20)
        assert usage[1].video_bytes == 100  # kept until the sweep releases it
        assert (usage[2].active_jobs, usage[2].video_bytes, usage[2].stored_bytes) == (1, 100, 100)
        assert [u.owner_id for u in jobs.usage(2)] == [2]
        assert jobs.stored_bytes() == {"video": 200, "mp3": 10}  # the shared MP3 once


def in_threads(step: Callable[[], list[str]], sweepers: int = 3) -> list[str]:
    """Run ``step`` in several threads at once, like several gateway workers, each until it
    finds nothing; everything they returned."""
    found: list[str] = []
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while batch := step():
                found.extend(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(sweepers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return found


class TestSQLite(StorageContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> sa.Engine:
        return create_engine(f"sqlite:///{tmp_path}/test.db")


class TestMySQL(StorageContract):
    @pytest.fixture
    def engine(self, mysql_database: str) -> Iterator[sa.Engine]:
        engine = create_engine(mysql_database)
        yield engine
        engine.dispose()
