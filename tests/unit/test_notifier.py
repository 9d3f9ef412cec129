"""The notifier's emails: success carries job id, MP3 file id and link; failure the reason."""

from email.message import EmailMessage

from video2mp3.domain.events import (
    ConversionFailed,
    ConversionProgress,
    ConversionSucceeded,
    Event,
    Owner,
)
from video2mp3.notifier.worker import Notifier

OWNER = Owner(3, "ann@example.com")


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)

    def ping(self) -> None:
        return None


def notifier() -> tuple[Notifier, RecordingMailer]:
    mailer = RecordingMailer()
    return Notifier(mailer, mail_from="v2m <no@x>", public_url="https://v2m.example/"), mailer


def test_success_email() -> None:
    service, mailer = notifier()
    service.handle(Event("job-9", ConversionSucceeded("fid-1", 2_000_000, 61.5, OWNER, "talk.mp4")))
    [mail] = mailer.sent
    assert mail["To"] == "ann@example.com"
    assert "talk.mp3" in mail["Subject"]
    body = mail.get_content()
    assert "job-9" in body
    assert "fid-1" in body
    assert "https://v2m.example/api/v1/jobs/job-9/mp3" in body
    assert "https://v2m.example/download?fid=fid-1" in body


def test_failure_email_says_why() -> None:
    service, mailer = notifier()
    service.handle(
        Event("job-9", ConversionFailed("no_audio", "no audio stream", False, OWNER, "a.mp4"))
    )
    [mail] = mailer.sent
    assert "could not convert" in mail["Subject"]
    assert "no audio stream (no_audio)" in mail.get_content()


def test_progress_sends_nothing() -> None:
    service, mailer = notifier()
    service.handle(Event("job-9", ConversionProgress(0.5)))
    assert mailer.sent == []
