"""``SMTPMailer``: send through an SMTP server, plain, STARTTLS or SMTPS, with optional login.

Configured by one URL: ``smtp://host:port``, ``smtp://user:pass@host:587?starttls=true`` or
``smtps://user:pass@host:465``. A connection per message keeps the notifier simple and is cheap
at notification rates.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from video2mp3.errors import SettingsError, Unavailable

TIMEOUT = 30


class SMTPMailer:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SettingsError(f"VIDEO2MP3_SMTP_URL: not an smtp:// or smtps:// URL: {url!r}")
        self._ssl = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._ssl else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password or "")
        query = parse_qs(parts.query)
        self._starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self._ssl:
            return smtplib.SMTP_SSL(self._host, self._port, timeout=TIMEOUT, context=context)
        smtp = smtplib.SMTP(self._host, self._port, timeout=TIMEOUT)
        if self._starttls:
            smtp.starttls(context=context)
        return smtp

    def send(self, message: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                if self._user:
                    smtp.login(self._user, self._password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable(f"SMTP {self._host}:{self._port}: {exc}") from exc

    def ping(self) -> None:
        try:
            with self._connect() as smtp:
                smtp.noop()
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable(f"SMTP {self._host}:{self._port}: {exc}") from exc
