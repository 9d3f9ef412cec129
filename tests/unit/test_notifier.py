"""The notifier's emails: success carries job id, MP3 file id and links; failure the reason."""

import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from video2mp3.domain.events import ConversionSucceeded, Event, JobFinished, Owner
from video2mp3.notifier.worker import Notifier
from video2mp3.signing import DownloadLinks, SecretRing, generate

OWNER = Owner(3, "ann@example.com")


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)

    def ping(self) -> None:
        return None


@pytest.fixture
def links(tmp_path: Path) -> DownloadLinks:
    generate(tmp_path)
    return DownloadLinks(SecretRing.load(tmp_path), 86400)


@pytest.fixture
def notifier(links: DownloadLinks) -> tuple[Notifier, RecordingMailer]:
    mailer = RecordingMailer()
    service = Notifier(mailer, links, mail_from="v2m <no@x>", public_url="https://v2m.example/")
    return service, mailer


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
