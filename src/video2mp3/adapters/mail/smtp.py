"""``SMTPMailer``: send through an SMTP server, plain, STARTTLS or SMTPS, with optional login.

Configured by one URL: ``smtp://host:port``, ``smtp://user:pass@host:587?starttls=true`` or
``smtps://user:pass@host:465``. Credentials are only ever sent over TLS, unless the URL says
``insecure_login=true`` (a mail catcher on a private network). A connection per message keeps
the notifier simple and is cheap at notification rates.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from video2mp3.errors import SettingsError, Unavailable

TIMEOUT = 30
PING_TIMEOUT = 5


class SMTPMailer:
    def __init__(self, url: str) -> None:
        # Never echo the URL in an error: it carries the password.
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise SettingsError("VIDEO2MP3_SMTP_URL: the port is not a number") from None
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SettingsError("VIDEO2MP3_SMTP_URL: expected smtp://host:port or smtps://...")
        self._ssl = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = port or (465 if self._ssl else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password or "")
        query = {k: v[0].lower() in ("1", "true", "yes") for k, v in parse_qs(parts.query).items()}
        self._starttls = query.get("starttls", False)
        if self._user and not (self._ssl or self._starttls or query.get("insecure_login")):
            raise SettingsError(
                "VIDEO2MP3_SMTP_URL: credentials need smtps:// or ?starttls=true"
                " (or ?insecure_login=true on a trusted network)"
            )

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self._ssl:
            return smtplib.SMTP_SSL(self._host, self._port, timeout=TIMEOUT, context=context)
        smtp = smtplib.SMTP(self._host, self._port, timeout=TIMEOUT)
        if self._starttls:
            try:
                smtp.starttls(context=context)
            except BaseException:
                smtp.close()
                raise
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
        # The server's greeting is enough to know it is there; TLS and login are left to send(),
        # so a probing fleet of notifiers costs the relay no handshakes.
        smtp_class = smtplib.SMTP_SSL if self._ssl else smtplib.SMTP
        try:
            with smtp_class(self._host, self._port, timeout=PING_TIMEOUT) as smtp:
                smtp.noop()
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable(f"SMTP {self._host}:{self._port}: {exc}") from exc
