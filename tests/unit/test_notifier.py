"""The notifier's emails: success carries job id, MP3 file id and links; failure the reason."""

from email.message import EmailMessage

from video2mp3.domain.events import ConversionSucceeded, Event, JobFinished, Owner
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
    done = JobFinished("succeeded", OWNER, "talk.mp4", "fid-1", 2_000_000, 61.5)
    service.handle(Event("job-9", done))
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
    failed = JobFinished("failed", OWNER, "a.mp4", error_code="no_audio", error_message="no audio")
    service.handle(Event("job-9", failed))
    [mail] = mailer.sent
    assert "could not convert" in mail["Subject"]
    assert "no audio (no_audio)" in mail.get_content()


def test_converter_events_send_nothing() -> None:
    """Only the gateway's job.finished counts: it is sent once per job, converters' may repeat."""
    service, mailer = notifier()
    service.handle(Event("job-9", ConversionSucceeded("fid", 1, 1.0, OWNER, "a.mp4")))
    assert mailer.sent == []
