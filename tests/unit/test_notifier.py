"""The notifier's emails: success carries job id, MP3 file id and links; failure the reason; one
email per event whatever the redeliveries; one endpoint that cannot be scheduled holds up neither
the email nor the other endpoints."""

import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from video2mp3 import migrations
from video2mp3.adapters.bus.inprocess import InProcessBus
from video2mp3.adapters.sql.deliveries import SQLDeliveryLog as DeliveryLog
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.domain.events import ConversionSucceeded, Event, JobFinished, Owner
from video2mp3.domain.webhooks import WebhookTarget
from video2mp3.errors import Unavailable
from video2mp3.notifier.webhooks import Sender, WebhookDeliverer
from video2mp3.notifier.worker import Notifier
from video2mp3.ports.deliveries import EMAIL, Delivery, webhook_channel
from video2mp3.signing import DownloadLinks, SecretRing, generate
from video2mp3.ssrf import UrlGuard

OWNER = Owner(3, "ann@example.com")
DONE = JobFinished("succeeded", OWNER, "talk.mp4", "fid-1", 2_000_000, 61.5)


class RecordingMailer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[EmailMessage] = []
        self.failures = failures

    def send(self, message: EmailMessage) -> None:
        if self.failures:
            self.failures -= 1
            raise Unavailable("SMTP is down")
        message.as_bytes()  # what an SMTP client does: raises on a header it cannot write
        self.sent.append(message)

    def ping(self) -> None:
        return None


class ForgetfulDeliveryLog(DeliveryLog):
    """The database goes away right after the email was sent, once."""

    lost = 1

    def mark_sent(self, event_id: str, channel: str) -> None:
        if self.lost:
            self.lost -= 1
            raise Unavailable("database: gone")
        super().mark_sent(event_id, channel)


class PickyDeliveryLog(DeliveryLog):
    """Cannot schedule a delivery to one endpoint (a value its columns cannot hold, say)."""

    def schedule(self, delivery: Delivery) -> None:
        if delivery.target.id == "wh_bad":
            raise ValueError("Data too long for column 'secret'")
        super().schedule(delivery)


@pytest.fixture
def links(tmp_path: Path) -> DownloadLinks:
    generate(tmp_path)
    return DownloadLinks(SecretRing.load(tmp_path), 86400)


@pytest.fixture
def log_path(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/notifier.db"
    migrations.upgrade(create_engine(url), "notifier")
    return url


def make_notifier(
    log_path: str,
    links: DownloadLinks,
    mailer: RecordingMailer | None = None,
    log: type[DeliveryLog] = DeliveryLog,
) -> tuple[Notifier, RecordingMailer]:
    mailer = mailer or RecordingMailer()
    service = Notifier(
        mailer,
        links,
        log(create_engine(log_path)),
        mail_from="v2m <no@v2m.example>",
        public_url="https://v2m.example/",
    )
    return service, mailer


@pytest.fixture
def notifier(log_path: str, links: DownloadLinks) -> tuple[Notifier, RecordingMailer]:
    return make_notifier(log_path, links)


def test_success_email(notifier: tuple[Notifier, RecordingMailer], links: DownloadLinks) -> None:
    """The email carries a signed link that opens this owner's MP3 with no credentials."""
    service, mailer = notifier
    done = JobFinished("succeeded", OWNER, "talk.mp4", "fid-1", 2_000_000, 61.5)
    service.handle(Event("job-9", done))
    [mail] = mailer.sent
    assert mail["To"] == "ann@example.com"
    assert "talk.mp3" in mail["Subject"]
    body = mail.get_content()
    assert "job-9" in body
    assert "fid-1" in body
    [token] = re.findall(r"https://v2m\.example/mp3/(\S+)", body)
    target = links.open(token)
    assert (target.owner_id, target.mp3_fid) == (OWNER.id, "fid-1")
    assert "1 day" in body
    assert "kept until" not in body  # kept for ever: nothing to say


def test_success_email_says_until_when_the_mp3_is_kept(
    notifier: tuple[Notifier, RecordingMailer],
) -> None:
    service, mailer = notifier
    done = JobFinished("succeeded", OWNER, "a.mp4", "f", 1, 1.0, expires_at="2026-12-03T07:00:00Z")
    service.handle(Event("job-9", done))
    [mail] = mailer.sent
    assert "The MP3 is kept until 2026-12-03T07:00:00Z." in mail.get_content()


def test_failure_email_says_why(notifier: tuple[Notifier, RecordingMailer]) -> None:
    service, mailer = notifier
    failed = JobFinished("failed", OWNER, "a.mp4", error_code="no_audio", error_message="no audio")
    service.handle(Event("job-9", failed))
    [mail] = mailer.sent
    assert "could not convert" in mail["Subject"]
    assert "no audio (no_audio)" in mail.get_content()


def test_converter_events_send_nothing(notifier: tuple[Notifier, RecordingMailer]) -> None:
    """Only the gateway's job.finished counts: it is sent once per job, converters' may repeat."""
    service, mailer = notifier
    service.handle(Event("job-9", ConversionSucceeded("fid", 1, 1.0, OWNER, "a.mp4")))
    assert mailer.sent == []


def test_a_redelivered_event_is_emailed_once_by_any_make_notifier(log_path, links: str) -> None:
    event = Event("job-9", DONE)
    first, first_mailer = make_notifier(log_path, links)
    second, second_mailer = make_notifier(log_path, links)  # another process, after the first died
    first.handle(event)
    first.handle(event)
    second.handle(event)
    assert len(first_mailer.sent) == 1
    assert second_mailer.sent == []


def test_the_message_id_is_stable_per_event(
    log_path: str, links: DownloadLinks, tmp_path: Path
) -> None:
    event = Event("job-9", DONE)
    first, _ = make_notifier(log_path, links)
    other_log = f"sqlite:///{tmp_path}/other.db"
    migrations.upgrade(create_engine(other_log), "notifier")
    second, _ = make_notifier(other_log, links)
    message_id = first.message_id(event)
    assert message_id == second.message_id(event) == f"<{event.event_id}.email@v2m.example>"
    assert first.message_id(Event("job-9", DONE)) != message_id


def test_an_smtp_failure_is_retried_and_sent_once(log_path: str, links: DownloadLinks) -> None:
    service, mailer = make_notifier(log_path, links, RecordingMailer(failures=2))
    event = Event("job-9", DONE)
    for _ in range(2):
        with pytest.raises(Unavailable):
            service.handle(event)
    service.handle(event)
    service.handle(event)
    assert len(mailer.sent) == 1


def test_a_send_the_database_could_not_record_is_recorded_not_resent(
    log_path: str, links: DownloadLinks
) -> None:
    service, mailer = make_notifier(log_path, links, log=ForgetfulDeliveryLog)
    event = Event("job-9", DONE)
    with pytest.raises(Unavailable):
        service.handle(event)  # sent, then the record failed: the bus retries in place
    service.handle(event)
    assert len(mailer.sent) == 1
    other, other_mailer = make_notifier(log_path, links)
    other.handle(event)
    assert other_mailer.sent == []


def test_a_file_name_with_line_separators_still_makes_a_sendable_email(
    log_path: str, links: DownloadLinks
) -> None:
    service, mailer = make_notifier(log_path, links)
    name = "bad\u2028name\r\nBcc: x@evil.example\u2029.mp4"
    service.handle(Event("job-9", JobFinished("succeeded", OWNER, name, "fid", 1, 1.0)))
    [mail] = mailer.sent
    assert mail["Subject"] == "Your MP3 is ready: bad name Bcc: x@evil.example.mp3"
    assert mail["Bcc"] is None
    wire = mail.as_bytes()
    assert b"\nBcc" not in wire


def test_an_endpoint_that_cannot_be_scheduled_holds_up_nothing_else(
    log_path: str, links: DownloadLinks
) -> None:
    schedule = PickyDeliveryLog(create_engine(log_path))
    mailer = RecordingMailer()
    settings = {"mail_from": "v2m <no@v2m.example>", "public_url": "https://v2m.example/"}
    webhooks = WebhookDeliverer(schedule, Sender(UrlGuard()), mailer, InProcessBus(), **settings)
    service = Notifier(mailer, links, schedule, webhooks=webhooks, **settings)
    bad, good = (
        WebhookTarget(i, "https://hooks.example/", "whsec_QUJD") for i in ("wh_bad", "wh_ok")
    )
    event = Event(
        "job-9", JobFinished("succeeded", OWNER, "a.mp4", "f", 1, 1.0, webhooks=(bad, good))
    )
    for _ in range(2):  # the bus redelivers it, up to its limit: nothing done is done twice
        with pytest.raises(ValueError, match="Data too long"):
            service.handle(event)
    assert len(mailer.sent) == 1
    assert schedule.record(event.event_id, EMAIL) is not None
    scheduled = schedule.record(event.event_id, webhook_channel("wh_ok"))
    assert scheduled is not None
    assert scheduled.attempts == 0
    assert schedule.record(event.event_id, webhook_channel("wh_bad")) is None
