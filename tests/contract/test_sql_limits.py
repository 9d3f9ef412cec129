"""Per-user limits hold under concurrency, on SQLite and MySQL: uploads running at once for one
user, and cache requests made without uploading, are admitted against one count, so that no
more than ``max_active_jobs`` are active and the bytes stored (uploads under way included) never
pass the quota."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from video2mp3 import migrations
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.jobs import SQLJobRepository
from video2mp3.domain.events import ConversionSucceeded, Event
from video2mp3.domain.jobs import Job
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import QuotaExceeded, TooManyJobs, UploadNeeded, Video2mp3Error
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.tokens import Principal
from video2mp3.signing import DownloadLinks, Secret, SecretRing

ANN = Principal(1, "ann@example.com")
MB = 10**6


def slow(content: bytes, pieces: int = 8) -> Iterator[bytes]:
    """``content`` arriving over a while, so that uploads started together overlap."""
    step = -(-len(content) // pieces)
    for at in range(0, len(content), step):
        time.sleep(0.05)
        yield content[at : at + step]


def at_once(count: int, upload: Callable[[int], Job]) -> tuple[list[Job], list[Video2mp3Error]]:
    """Run ``upload(0..count-1)`` in threads started together; the jobs and the refusals."""
    done: list[Job] = []
    refused: list[Video2mp3Error] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        try:
            done.append(upload(n))
        except Video2mp3Error as exc:
            refused.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return done, refused


def video(n: int, size: int) -> bytes:
    return n.to_bytes(4, "big") * (size // 4)


class LimitsContract:
    @pytest.fixture
    def engine(self) -> sa.Engine:
        raise NotImplementedError

    @pytest.fixture
    def jobs(self, engine: sa.Engine) -> SQLJobRepository:
        migrations.upgrade(engine, "gateway")
        return SQLJobRepository(engine)

    @pytest.fixture
    def gateway(self, jobs: SQLJobRepository, tmp_path: Path) -> Callable[..., Gateway]:
        links = DownloadLinks(SecretRing([Secret("k", bytes(32))]), 60)
        blobs = LocalBlobStore(tmp_path / "blobs")
        return lambda **limits: Gateway(jobs, blobs, 100 * MB, links, **limits)

    def test_uploads_at_once_never_pass_the_active_jobs_limit(
        self, gateway: Callable[..., Gateway], jobs: SQLJobRepository
    ) -> None:
        service = gateway(max_active_jobs=2)
        done, refused = at_once(
            10, lambda n: service.upload(ANN, f"{n}.mp4", slow(video(n, MB)), ConversionOptions())
        )
        assert len(done) == 2
        assert len(refused) == 8
        assert all(isinstance(exc, TooManyJobs) for exc in refused)
        assert jobs.usage(ANN.user_id)[0].active_jobs == 2

    @pytest.mark.parametrize("declared", [True, False])
    def test_uploads_at_once_never_pass_the_quota(
        self, gateway: Callable[..., Gateway], jobs: SQLJobRepository, declared: bool
    ) -> None:
        service = gateway(quota_bytes=3 * MB)

        def upload(n: int) -> Job:
            content = video(n, 2 * MB)
            size = len(content) if declared else 0
            return service.upload(
                ANN, f"{n}.mp4", slow(content), ConversionOptions(), declared_size=size
            )

        done, refused = at_once(10, upload)
        assert len(done) == 1
        assert all(isinstance(exc, QuotaExceeded) for exc in refused), refused
        assert jobs.usage(ANN.user_id)[0].stored_bytes == 2 * MB
        # The refused uploads gave their reservations back: a small one fits again.
        service.upload(ANN, "small.mp4", iter([b"small"]), ConversionOptions())

    def test_cache_requests_without_upload_count_against_the_limits(
        self, gateway: Callable[..., Gateway], jobs: SQLJobRepository
    ) -> None:
        first = gateway().upload(ANN, "a.mp4", iter([video(0, MB)]), ConversionOptions())
        jobs.apply(Event(first.id, ConversionSucceeded("mp3", MB, 1.0, first.owner, "a.mp4")))
        assert first.video_sha256 is not None

        def ask(service: Gateway) -> Job:
            return service.from_cache(ANN, first.video_sha256, MB, "again.mp4", None)

        with pytest.raises(QuotaExceeded):  # 1 MB of video and 1 MB of MP3 stored already
            ask(gateway(quota_bytes=int(2.5 * MB)))
        service = gateway(quota_bytes=5 * MB)
        done, refused = at_once(6, lambda n: ask(service))
        assert (len(done), len(refused)) == (3, 3)
        assert all(isinstance(exc, QuotaExceeded) for exc in refused)
        assert jobs.usage(ANN.user_id)[0].stored_bytes <= 5 * MB
        busy = gateway(max_active_jobs=1)
        busy.upload(ANN, "b.mp4", iter([video(1, 10)]), ConversionOptions())  # queued: active
        with pytest.raises(TooManyJobs):
            ask(busy)
        with pytest.raises(UploadNeeded):  # another user's conversion is not theirs to ask
            gateway().from_cache(
                Principal(2, "bob@example.com"), first.video_sha256, MB, "b.mp4", None
            )


class TestSQLite(LimitsContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> sa.Engine:
        return create_engine(f"sqlite:///{tmp_path}/test.db")


class TestMySQL(LimitsContract):
    @pytest.fixture
    def engine(self, mysql_database: str) -> Iterator[sa.Engine]:
        engine = create_engine(mysql_database)
        yield engine
        engine.dispose()
