"""The SQL repositories behave the same on SQLite (dev) and MySQL (production)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from video2mp3 import migrations
from video2mp3.adapters.sql import deliveries as delivery_module
from video2mp3.adapters.sql import jobs as jobs_module
from video2mp3.adapters.sql.deliveries import SQLDeliveryLog as DeliveryLog
from video2mp3.adapters.sql.deliveries import metadata as deliveries_metadata
from video2mp3.adapters.sql.engine import create_engine, ping
from video2mp3.adapters.sql.jobs import SQLJobRepository as JobRepository
from video2mp3.adapters.sql.jobs import metadata as jobs_metadata
from video2mp3.adapters.sql.users import SQLUserRepository as UserRepository
from video2mp3.adapters.sql.users import metadata as users_metadata
from video2mp3.domain.events import (
    ConversionProgress,
    ConversionSucceeded,
    Event,
    JobFinished,
    Owner,
)
from video2mp3.domain.jobs import Job, Status, iso, utcnow
from video2mp3.errors import Conflict, NotPublished, Unavailable
from video2mp3.ports.deliveries import Busy, Claim


def new_job(owner: int = 1, name: str = "a.mp4") -> tuple[Job, Event]:
    job = Job(owner_id=owner, owner_email="a@example.com", filename=name, video_fid="v" + name)
    return job, job.requested_event("corr")


class SQLContract:
    @pytest.fixture
    def engine(self) -> sa.Engine:
        raise NotImplementedError

    @pytest.fixture
    def jobs(self, engine: sa.Engine) -> JobRepository:
        migrations.upgrade(engine, "gateway")
        return JobRepository(engine)

    @pytest.fixture
    def users(self, engine: sa.Engine) -> UserRepository:
        migrations.upgrade(engine, "auth")
        return UserRepository(engine)

    @pytest.mark.parametrize(
        ("service", "metadata"),
        [("auth", users_metadata), ("gateway", jobs_metadata), ("notifier", deliveries_metadata)],
    )
    def test_migrations_build_exactly_the_models_schema(
        self, engine: sa.Engine, service: migrations.Service, metadata: sa.MetaData
    ) -> None:
        migrations.upgrade(engine, service)
        migrations.upgrade(engine, service)  # a second run changes nothing
        with engine.connect() as connection:
            options = {"version_table": f"alembic_version_{service}"}
            context = MigrationContext.configure(connection, opts=options)
            assert compare_metadata(context, metadata) == []

    def test_both_services_can_share_one_database(self, engine: sa.Engine) -> None:
        migrations.upgrade(engine, "auth")
        migrations.upgrade(engine, "gateway")
        migrations.upgrade(engine, "notifier")
        migrations.upgrade(engine, "auth")
        tables = set(sa.inspect(engine).get_table_names())
        assert {"users", "jobs", "outbox", "deliveries"} <= tables

    def test_users(self, users: UserRepository) -> None:
        ann = users.add("ann@example.com", "hash")
        assert users.by_email("ann@example.com") == ann
        assert users.by_email("bob@example.com") is None
        with pytest.raises(Conflict):
            users.add("ann@example.com", "other")
        users.set_password_hash(ann.id, "rehashed")
        found = users.by_email("ann@example.com")
        assert found is not None
        assert found.password_hash == "rehashed"

    def test_job_round_trip(self, jobs: JobRepository) -> None:
        job, event = new_job()
        jobs.add(job, event)
        got = jobs.get(job.id, 1)
        assert got is not None
        assert (got.status, got.filename, got.video_fid) == (Status.QUEUED, "a.mp4", "va.mp4")
        assert jobs.get(job.id, 2) is None  # not the owner

    def test_an_upload_recorded_late_keeps_what_a_converter_settled(
        self, jobs: JobRepository
    ) -> None:
        job, event = new_job()
        jobs.add(job, event)
        done = ConversionSucceeded("m1", 10, 1.0, job.owner, "a.mp4")
        jobs.apply(Event(job.id, done))
        job.video_size, job.video_sha256, job.cache_key = 123, "ab" * 32, "k1"
        jobs.record_upload(job)
        got = jobs.get(job.id, 1)
        assert got is not None
        assert (got.video_size, got.video_sha256, got.cache_key) == (123, "ab" * 32, "k1")
        assert (got.status, got.mp3_fid) == (Status.SUCCEEDED, "m1")

    def test_add_writes_the_outbox_in_the_same_transaction(self, jobs: JobRepository) -> None:
        job, event = new_job()
        jobs.add(job, event)
        published: list[str] = []
        assert jobs.relay_outbox(published.append) == 1
        assert [Event.from_json(b) for b in published] == [event]
        assert jobs.relay_outbox(published.append) == 0

    def test_a_job_that_cannot_be_stored_queues_no_request(self, jobs: JobRepository) -> None:
        job, event = new_job()
        jobs.add(job, event)
        clash = Job(owner_id=1, owner_email="a@example.com", filename="b.mp4", video_fid="vb")
        clash.id = job.id  # the insert fails: its request must not be queued either
        with pytest.raises(sa.exc.IntegrityError):
            jobs.add(clash, clash.requested_event("corr"))
        assert jobs.outbox_depth() == 1

    def test_a_failed_publish_keeps_the_rest_for_later(self, jobs: JobRepository) -> None:
        for name in ("a", "b", "c"):
            jobs.add(*new_job(name=name))
        sent: list[str] = []

        def flaky(body: str) -> None:
            if len(sent) == 1:
                raise Unavailable("broker down")
            sent.append(body)

        with pytest.raises(Unavailable):
            jobs.relay_outbox(flaky)
        assert jobs.outbox_depth() == 2  # the published one is gone, the others wait
        assert jobs.relay_outbox(sent.append) == 2
        assert [Event.from_json(b).data.filename for b in sent] == ["a", "b", "c"]  # type: ignore[union-attr]

    def test_an_event_that_cannot_be_published_waits_and_the_others_go(
        self, jobs: JobRepository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in "abcd":
            jobs.add(*new_job(name=name))
        refused: dict[str, Exception] = {
            "a": NotPublished("no queue is bound to conversion.requested"),
            "b": KeyError("a bug"),
        }
        tried, sent = [], []

        def picky(body: str) -> None:
            name = Event.from_json(body).data.filename  # type: ignore[union-attr]
            tried.append(name)
            if name in refused:
                raise refused[name]
            sent.append(name)

        assert jobs.relay_outbox(picky, batch=2) == 0  # a whole batch that cannot go...
        assert jobs.relay_outbox(picky, batch=2) == 2  # ...holds up none after it
        assert jobs.relay_outbox(picky, batch=2) == 0
        assert (tried, jobs.outbox_depth()) == (["a", "b", "c", "d"], 2)  # set aside a while
        later = utcnow() + jobs_module.SET_ASIDE + timedelta(seconds=1)
        monkeypatch.setattr(jobs_module, "utcnow", lambda: later)
        refused.clear()
        assert jobs.relay_outbox(picky, batch=2) == 2
        assert (sent, jobs.outbox_depth()) == (["c", "d", "a", "b"], 0)

    def test_list_is_newest_first_and_paginated(self, jobs: JobRepository) -> None:
        made = []
        for i in range(5):
            job, event = new_job(name=f"{i}.mp4")
            job.created_at += timedelta(seconds=i)
            jobs.add(job, event)
            made.append(job.id)
        jobs.add(*new_job(owner=2))
        page, total = jobs.page(1, limit=2, offset=1)
        assert total == 5
        assert [j.id for j in page] == [made[3], made[2]]

    def test_changed_since_sees_every_owners_updates_in_order(self, jobs: JobRepository) -> None:
        before = utcnow() - timedelta(seconds=1)
        old, mine, theirs = new_job(name="old"), new_job(name="mine"), new_job(owner=2)
        old[0].updated_at = before - timedelta(minutes=5)
        theirs[0].updated_at = mine[0].updated_at + timedelta(milliseconds=5)
        for job, event in (old, mine, theirs):
            jobs.add(job, event)
        assert [j.id for j in jobs.changed_since(before)] == [mine[0].id, theirs[0].id]
        cutoff = jobs.changed_since(before)[-1].updated_at
        assert jobs.changed_since(cutoff) == []
        jobs.apply(Event(mine[0].id, ConversionProgress(0.5)))
        [changed] = jobs.changed_since(cutoff)
        assert (changed.id, changed.status, changed.progress) == (
            mine[0].id,
            Status.PROCESSING,
            0.5,
        )
        assert len(jobs.changed_since(before, limit=1)) == 1

    def test_apply_is_monotonic(self, jobs: JobRepository) -> None:
        job, event = new_job()
        jobs.add(job, event)
        done = Event(job.id, ConversionSucceeded("mp3", 5, 1.0, Owner(1, "a@x"), "a.mp4"))
        assert jobs.apply(Event(job.id, ConversionProgress(0.5)))[1]
        assert jobs.apply(done)[1]
        assert not jobs.apply(done)[1]  # a duplicate changes nothing and tells nobody
        late, changed = jobs.apply(Event(job.id, ConversionProgress(0.7)))
        assert not changed
        assert late is not None
        assert late.status is Status.SUCCEEDED
        assert jobs.by_mp3("mp3", 1) is not None
        assert jobs.by_mp3("mp3", 2) is None
        assert jobs.apply(Event("no-such-job", ConversionProgress(0.1))) == (None, False)
        told: list[Event] = []
        jobs.relay_outbox(lambda body: told.append(Event.from_json(body)))
        assert [e.type for e in told] == ["conversion.requested", "job.finished"]
        settled = jobs.get(job.id, 1)
        assert settled is not None
        assert settled.expires_at == settled.updated_at + timedelta(days=7)  # the default
        assert told[1].data == JobFinished(
            "succeeded",
            Owner(1, "a@example.com"),
            "a.mp4",
            "mp3",
            5,
            1.0,
            expires_at=iso(settled.expires_at),
        )

    def test_concurrent_progress_never_goes_backwards(self, jobs: JobRepository) -> None:
        job, event = new_job()
        jobs.add(job, event)
        threads = [
            threading.Thread(target=jobs.apply, args=(Event(job.id, ConversionProgress(p / 20)),))
            for p in range(1, 20)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = jobs.get(job.id, 1)
        assert got is not None
        assert got.progress == pytest.approx(19 / 20)

    def test_delete(self, jobs: JobRepository) -> None:
        job, event = new_job()
        jobs.add(job, event)
        assert jobs.delete(job.id, 2) is None
        deleted = jobs.delete(job.id, 1)
        assert deleted is not None
        assert deleted.id == job.id
        assert jobs.get(job.id, 1) is None

    def test_stalled_jobs_fail_and_tell_their_owner(self, jobs: JobRepository) -> None:
        quiet, busy, queued = new_job(name="quiet"), new_job(name="busy"), new_job(name="queued")
        for job, event in (quiet, busy, queued):
            jobs.add(job, event)
        jobs.relay_outbox(lambda body: None)
        jobs.apply(Event(quiet[0].id, ConversionProgress(0.3)))
        cutoff = utcnow() + timedelta(seconds=1)
        time.sleep(1.2)
        jobs.apply(Event(busy[0].id, ConversionProgress(0.3)))  # news after the cutoff
        assert jobs.fail_stalled(cutoff) == [quiet[0].id]
        stalled = jobs.get(quiet[0].id, 1)
        assert stalled is not None
        assert (stalled.status, stalled.error_code) == (Status.FAILED, "stalled")
        published: list[Event] = []
        jobs.relay_outbox(lambda body: published.append(Event.from_json(body)))
        [told] = published
        assert (told.job_id, told.type) == (quiet[0].id, "job.finished")
        assert isinstance(told.data, JobFinished)
        assert (told.data.status, told.data.error_code) == ("failed", "stalled")
        assert told.data.owner.email == "a@example.com"
        assert jobs.fail_stalled(cutoff) == []
        for job in (busy, queued):
            still = jobs.get(job[0].id, 1)
            assert still is not None
            assert not still.finished

    def test_deleting_a_job_drops_its_unsent_request(self, jobs: JobRepository) -> None:
        job, event = new_job()
        jobs.add(job, event)
        jobs.delete(job.id, 1)
        assert jobs.outbox_depth() == 0

    def test_ping(self, engine: sa.Engine) -> None:
        ping(engine)

    def test_a_delivery_is_claimed_once_and_done_once_sent(self, engine: sa.Engine) -> None:
        migrations.upgrade(engine, "notifier")
        first, second = DeliveryLog(engine), DeliveryLog(engine)  # two notifier processes
        assert first.claim("ev-1", "email") is Claim.TAKEN
        assert first.claim("ev-1", "email") is Claim.TAKEN  # our own claim, say after an SMTP error
        with pytest.raises(Busy):  # the other one may be sending right now
            second.claim("ev-1", "email")
        assert second.claim("ev-1", "webhook:7") is Claim.TAKEN  # channels are independent
        first.mark_sent("ev-1", "email")
        assert second.claim("ev-1", "email") is Claim.DONE
        assert first.claim("ev-1", "email") is Claim.DONE

    def test_a_dead_holders_claim_is_taken_over_after_the_lease(
        self, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        migrations.upgrade(engine, "notifier")
        dead, alive = DeliveryLog(engine), DeliveryLog(engine)
        monkeypatch.setattr(delivery_module, "LEASE", timedelta(seconds=-1))  # lapsed at once
        assert dead.claim("ev-2", "email") is Claim.TAKEN
        monkeypatch.undo()
        assert alive.claim("ev-2", "email") is Claim.TAKEN
        with pytest.raises(Busy):  # the claim is now the live one's
            dead.claim("ev-2", "email")


class TestSQLite(SQLContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> sa.Engine:
        return create_engine(f"sqlite:///{tmp_path}/test.db")


class TestMySQL(SQLContract):
    @pytest.fixture
    def engine(self, mysql_database: str) -> Iterator[sa.Engine]:
        engine = create_engine(mysql_database)
        yield engine
        engine.dispose()

    def test_unreachable_database_is_unavailable(self) -> None:
        with pytest.raises(Unavailable):
            ping(create_engine("mysql+pymysql://root@127.0.0.1:1/x?connect_timeout=1"))
