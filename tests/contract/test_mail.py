"""One contract for both mailers; SMTP against a real aiosmtpd server started by the test."""

from __future__ import annotations

import email
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from tests.support import free_port
from video2mp3.adapters.mail.outbox import OutboxMailer
from video2mp3.adapters.mail.smtp import SMTPMailer
from video2mp3.errors import SettingsError, Unavailable
from video2mp3.ports.mail import Mailer


class Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"


def authenticator(
    server: object, session: object, envelope: object, mechanism: str, data: object
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"s3cret")
    # handled=False on failure, else the client waits for an answer that never comes.
    return AuthResult(success=ok, handled=False)


def smtp_server(**kwargs: object) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller, inbox


def message(to: str = "ann@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "v2m <no@example.com>", to, "Your MP3 is ready"
    msg.set_content("MP3 file id: abc123")
    return msg


class MailerContract:
    def received(self) -> list[email.message.Message]:
        raise NotImplementedError

    def test_sends_the_message(self, mailer: Mailer) -> None:
        mailer.send(message())
        [got] = self.received()
        assert got["To"] == "ann@example.com"
        assert got["Subject"] == "Your MP3 is ready"
        assert "abc123" in got.get_payload()

    def test_ping(self, mailer: Mailer) -> None:
        mailer.ping()


class TestSMTPMailer(MailerContract):
    @pytest.fixture
    def mailer(self) -> Iterator[Mailer]:
        controller, self.inbox = smtp_server()
        yield SMTPMailer(f"smtp://127.0.0.1:{controller.port}")
        controller.stop()

    def received(self) -> list[email.message.Message]:
        return self.inbox.messages

    def test_login(self) -> None:
        controller, inbox = smtp_server(authenticator=authenticator, auth_require_tls=False)
        try:
            SMTPMailer(f"smtp://bot:s3cret@127.0.0.1:{controller.port}?insecure_login=true").send(
                message()
            )
            assert len(inbox.messages) == 1
            with pytest.raises(Unavailable):
                SMTPMailer(f"smtp://bot:wrong@127.0.0.1:{controller.port}?insecure_login=1").send(
                    message()
                )
            assert len(inbox.messages) == 1
        finally:
            controller.stop()

    def test_starttls_is_required_when_asked(self) -> None:
        controller, _ = smtp_server()  # no TLS offered
        try:
            with pytest.raises(Unavailable):
                SMTPMailer(f"smtp://127.0.0.1:{controller.port}?starttls=true").send(message())
        finally:
            controller.stop()

    def test_credentials_are_never_sent_in_clear_by_default(self) -> None:
        with pytest.raises(SettingsError, match="starttls") as caught:
            SMTPMailer("smtp://bot:s3cret@mail.example.com:587")
        assert "s3cret" not in str(caught.value)
        with pytest.raises(SettingsError) as caught:
            SMTPMailer("smtps://bot:s3cret@mail.example.com:nope")
        assert "s3cret" not in str(caught.value)

    def test_unreachable_server(self) -> None:
        with pytest.raises(Unavailable):
            SMTPMailer(f"smtp://127.0.0.1:{free_port()}").send(message())
        assert ssl  # smtps uses the default TLS context


class TestOutboxMailer(MailerContract):
    @pytest.fixture
    def mailer(self, tmp_path: Path) -> Mailer:
        self.folder = tmp_path
        return OutboxMailer(tmp_path)

    def received(self) -> list[email.message.Message]:
        return [email.message_from_bytes(p.read_bytes()) for p in self.folder.glob("*.eml")]
