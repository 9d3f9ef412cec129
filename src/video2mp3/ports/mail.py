"""Mail port: hand one email to a mail system."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` (it carries From/To/Subject). Raises ``Unavailable`` on failure."""
        ...

    def ping(self) -> None:
        """Return if the mail system is reachable, else raise ``Unavailable``."""
        ...
