"""The webhook tables behave the same on SQLite (dev) and MySQL (production): registrations in
the gateway's database, the delivery schedule in the notifier's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from video2mp3 import migrations
from video2mp3.adapters.sql.deliveries import LEASE, SQLDeliverySchedule
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.jobs import SQLJobRepository
from video2mp3.adapters.sql.webhooks import SQLWebhookRepository
from video2mp3.domain.events import ConversionSucceeded, Event, JobFinished, Owner
from video2mp3.domain.jobs import Job, utcnow
from video2mp3.domain.webhooks import Webhook, WebhookTarget
from video2mp3.errors import Conflict
from video2mp3.ports.webhooks import Delivery


class WebhookContract:
    @pytest.fixture
    def engine(self) -> sa.Engine:
        raise NotImplementedError

    @pytest.fixture
    def registrations(self, engine: sa.Engine) -> SQLWebhookRepository:
        migrations.upgrade(engine, "gateway")
        return SQLWebhookRepository(engine)

    @pytest.fixture
    def schedule(self, engine: sa.Engine) -> SQLDeliverySchedule:
        migrations.upgrade(engine, "notifier")
        return SQLDeliverySchedule(engine)

    def test_registrations_are_per_owner_and_bounded(
        self, registrations: SQLWebhookRepository
    ) -> None:
        first = Webhook(owner_id=1, url="https://a.example/h", events=("job.failed",))
        registrations.add(first, limit=2)
        registrations.add(Webhook(owner_id=1, url="https://b.example/h", events=()), limit=2)
        with pytest.raises(Conflict):
            registrations.add(Webhook(owner_id=1, url="https://c.example/h", events=()), limit=2)
        registrations.add(Webhook(owner_id=2, url="https://c.example/h", events=()), limit=2)
        [listed, _] = registrations.list(1)
        assert (listed.id, listed.url, listed.events, listed.secret) == (
            first.id,
            first.url,
            ("job.failed",),
            first.secret,
        )
        assert not registrations.delete(first.id, owner_id=2)  # not theirs
        registrations.disable(first.id, "failing for days")
        assert registrations.list(1)[0].disabled_reason == "failing for days"
        assert registrations.delete(first.id, owner_id=1)
        assert [w.url for w in registrations.list(1)] == ["https://b.example/h"]

    def test_a_finished_job_carries_its_owners_matching_enabled_endpoints(
        self, engine: sa.Engine, registrations: SQLWebhookRepository
    ) -> None:
        jobs = SQLJobRepository(engine)
        wanted = Webhook(owner_id=1, url="https://ok.example/h", events=("job.succeeded",))
        registrations.add(wanted, limit=5)
        for webhook in (
            Webhook(owner_id=1, url="https://f.example/h", events=("job.failed",)),
            Webhook(owner_id=2, url="https://other.example/h", events=("job.succeeded",)),
            disabled := Webhook(owner_id=1, url="https://off.example/h", events=("job.succeeded",)),
        ):
            registrations.add(webhook, limit=5)
        registrations.disable(disabled.id, "off")
        job = Job(owner_id=1, owner_email="a@example.com", filename="a.mp4", video_fid="v")
        jobs.add(job, job.requested_event(None))
        owner = Owner(1, "a@example.com")
        jobs.apply(Event(job.id, ConversionSucceeded("m", 10, 1.0, owner, "a.mp4")))
        published: list[Event] = []
        jobs.relay_outbox(lambda body: published.append(Event.from_json(body)))
        [finished] = [e for e in published if isinstance(e.data, JobFinished)]
        assert isinstance(finished.data, JobFinished)
        assert finished.data.webhooks == (WebhookTarget(wanted.id, wanted.url, wanted.secret),)

    def test_a_delivery_is_scheduled_once_claimed_once_and_retried(
        self, schedule: SQLDeliverySchedule
    ) -> None:
        target = WebhookTarget("wh_1", "https://a.example/h", "whsec_x")
        delivery = Delivery("e1", target, "a@example.com", '{"x": 1}', 0, utcnow())
        schedule.schedule(delivery)
        schedule.schedule(delivery)  # a redelivered job.finished
        [due] = schedule.due(utcnow())
        assert (due.event_id, due.target, due.body, due.attempts) == ("e1", target, '{"x": 1}', 0)
        assert schedule.due(utcnow()) == []  # claimed: another sender skips it
        assert len(schedule.due(utcnow() + LEASE + timedelta(seconds=1))) == 1  # lease over

        retry_at = utcnow() + timedelta(hours=2)
        since = schedule.failed(due, 500, "oops", retry_at)
        assert schedule.failed(due, 500, "oops", retry_at) == since  # still failing since then
        assert schedule.due(utcnow() + timedelta(hours=1)) == []
        [again] = schedule.due(retry_at)
        assert again.attempts == 1
        schedule.succeeded(again, 204, "")
        assert schedule.due(utcnow() + timedelta(days=9)) == []
        [row] = schedule.deliveries("e1")
        assert (row.attempts, row.last_status, row.delivered_at is not None) == (2, 204, True)
        # A success makes the endpoint healthy: its next failure starts a new count.
        later = Delivery("e2", target, "a@example.com", "{}", 0, utcnow())
        schedule.schedule(later)
        assert schedule.failed(later, None, "timeout", None) > since

    def test_an_endpoint_is_disabled_once_and_its_pending_deliveries_dropped(
        self, schedule: SQLDeliverySchedule
    ) -> None:
        target = WebhookTarget("wh_2", "https://a.example/h", "whsec_x")
        first = Delivery("e1", target, "a@example.com", "{}", 0, utcnow())
        schedule.schedule(first)
        schedule.failed(first, 503, "down", utcnow())
        assert schedule.disable("wh_2")
        assert not schedule.disable("wh_2")  # the owner is emailed once
        assert schedule.due(utcnow() + timedelta(days=9)) == []
        schedule.schedule(Delivery("e3", target, "a@example.com", "{}", 0, utcnow()))
        assert schedule.deliveries("e3") == []  # nothing new for a disabled endpoint


class TestSQLite(WebhookContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> sa.Engine:
        return create_engine(f"sqlite:///{tmp_path}/test.db")


class TestMySQL(WebhookContract):
    @pytest.fixture
    def engine(self, mysql_database: str) -> Iterator[sa.Engine]:
        engine = create_engine(mysql_database)
        yield engine
        engine.dispose()
