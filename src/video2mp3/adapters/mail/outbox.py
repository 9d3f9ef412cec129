"""``OutboxMailer``: write each email as an ``.eml`` file and log it. For ``video2mp3 dev``."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from email.message import EmailMessage
from pathlib import Path

from video2mp3.errors import Unavailable

log = logging.getLogger(__name__)


class OutboxMailer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def send(self, message: EmailMessage) -> None:
        path = self.folder / f"{uuid.uuid4().hex}.eml"
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".partial")
        with os.fdopen(fd, "wb") as out:
            out.write(message.as_bytes())
        os.replace(tmp, path)
        log.info(
            "mail written to the outbox",
            extra={"to": message["To"], "subject": message["Subject"], "path": str(path)},
        )

    def ping(self) -> None:
        if not os.access(self.folder, os.W_OK):
            raise Unavailable(f"mail outbox {self.folder} is not writable")
