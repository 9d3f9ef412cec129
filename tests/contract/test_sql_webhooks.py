"""The webhook tables behave the same on SQLite (dev) and MySQL (production): registrations in
the gateway's database, their deliveries in the notifier's record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from video2mp3 import migrations
from video2mp3.adapters.sql import deliveries as deliveries_module
from video2mp3.adapters.sql.deliveries import LEASE, SQLDeliveryLog
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.jobs import SQLJobRepository
from video2mp3.adapters.sql.webhooks import SQLWebhookRepository
from video2mp3.domain.events import ConversionSucceeded, Event, JobFinished, Owner
from video2mp3.domain.jobs import Job, utcnow
from video2mp3.domain.webhooks import Webhook, WebhookTarget
from video2mp3.errors import Conflict
from video2mp3.ports.deliveries import EMAIL, Claim, Delivery


class WebhookContract:
    @pytest.fixture
    def engine(self) -> sa.Engine:
        raise NotImplementedError

    @pytest.fixture
    def registrations(self, engine: sa.Engine) -> SQLWebhookRepository:
        migrations.upgrade(engine, "gateway")
        return SQLWebhookRepository(engine)

    @pytest.fixture
    def schedule(self, engine: sa.Engine) -> SQLDeliveryLog:
        migrations.upgrade(engine, "notifier")
        return SQLDeliveryLog(engine)

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
        self, schedule: SQLDeliveryLog
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
        row = schedule.record("e1", "webhook:wh_1")
        assert row is not None
        assert (row.attempts, row.last_status, row.sent_at is not None) == (2, 204, True)
        # A success makes the endpoint healthy: its next failure starts a new count.
        later = Delivery("e2", target, "a@example.com", "{}", 0, utcnow())
        schedule.schedule(later)
        assert schedule.failed(later, None, "timeout", None) > since

    def test_an_endpoint_is_disabled_once_and_its_pending_deliveries_dropped(
        self, schedule: SQLDeliveryLog
    ) -> None:
        target = WebhookTarget("wh_2", "https://a.example/h", "whsec_x")
        first = Delivery("e1", target, "a@example.com", "{}", 0, utcnow())
        schedule.schedule(first)
        schedule.failed(first, 503, "down", utcnow())
        assert schedule.disable("wh_2")
        assert not schedule.disable("wh_2")  # the owner is emailed once
        assert schedule.due(utcnow() + timedelta(days=9)) == []
        schedule.schedule(Delivery("e3", target, "a@example.com", "{}", 0, utcnow()))
        assert schedule.record("e3", "webhook:wh_2") is None  # nothing new for a disabled one

    def test_a_row_that_cannot_be_read_is_given_up_and_the_others_are_due(
        self, schedule: SQLDeliveryLog
    ) -> None:
        target = WebhookTarget("wh_4", "https://a.example/h", "whsec_x")
        schedule.schedule(Delivery("e1", target, "a@example.com", "{}", 0, utcnow()))
        earlier = utcnow() - timedelta(minutes=1)
        with schedule.engine.begin() as conn:  # first in line, and its URL is missing
            conn.execute(
                deliveries_module.deliveries.insert().values(
                    event_id="e0",
                    channel="webhook:wh_5",
                    created_at=earlier,
                    next_attempt_at=earlier,
                    attempts=0,
                    secret="whsec_x",
                    owner_email="a@example.com",
                    body="{}",
                )
            )
        [due] = schedule.due(utcnow())
        assert (due.event_id, due.target) == ("e1", target)
        given_up = schedule.record("e0", "webhook:wh_5")
        assert given_up is not None
        assert (given_up.attempts, given_up.next_attempt_at, given_up.sent_at) == (1, None, None)
        assert (
            given_up.last_excerpt
            == "not sent: its record cannot be read (its url is None, not text)"
        )
        [again] = schedule.due(utcnow() + LEASE + timedelta(seconds=1))  # the readable one only
        assert again.event_id == "e1"

    def test_emails_and_webhook_calls_share_one_record(
        self, schedule: SQLDeliveryLog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        target = WebhookTarget("wh_3", "https://a.example/h", "whsec_x")
        monkeypatch.setattr(deliveries_module, "LEASE", timedelta(seconds=-1))
        assert schedule.claim("e4", EMAIL) is Claim.TAKEN  # and lapsed at once: its holder died
        monkeypatch.undo()
        schedule.schedule(Delivery("e4", target, "a@example.com", "{}", 0, utcnow()))
        [due] = schedule.due(utcnow())  # the email is composed from its event: it waits for that
        assert due.channel == "webhook:wh_3"
        schedule.succeeded(due, 200, "")
        assert schedule.claim("e4", EMAIL) is Claim.TAKEN
        schedule.mark_sent("e4", EMAIL)
        assert schedule.claim("e4", EMAIL) is Claim.DONE
        for channel in (EMAIL, "webhook:wh_3"):
            row = schedule.record("e4", channel)
            assert row is not None
            assert (row.sent_at is not None, row.next_attempt_at, row.attempts) == (True, None, 1)

    def test_the_webhooks_earlier_table_moves_into_the_record(self, engine: sa.Engine) -> None:
        with engine.begin() as conn:
            command.upgrade(migrations.config("notifier", conn), "notifier_webhooks_0001")
            conn.execute(
                sa.text(
                    "INSERT INTO webhook_deliveries (event_id, webhook_id, url, secret,"
                    " owner_email, body, attempts, created_at, next_attempt_at)"
                    " VALUES ('e9', 'wh_9', 'https://a.example/h', 'whsec_x', 'a@example.com',"
                    " '{}', 2, :now, :now)"
                ),
                {"now": utcnow()},
            )
        migrations.upgrade(engine, "notifier")
        [moved] = SQLDeliveryLog(engine).due(utcnow())
        assert (moved.event_id, moved.target, moved.attempts, moved.owner_email) == (
            "e9",
            WebhookTarget("wh_9", "https://a.example/h", "whsec_x"),
            2,
            "a@example.com",
        )
        assert "webhook_deliveries" not in sa.inspect(engine).get_table_names()


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
