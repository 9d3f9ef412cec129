"""JSON logs for operators, each line carrying the correlation id of the request or message.

``correlation_id`` is a contextvar: the HTTP layer sets it per request, the bus per message, and
every event a service publishes copies it, so one upload can be followed across all services.
``redact`` keeps download links' tokens out of the lines that name a request: a token in a log
opens an MP3 for a day to anyone who reads the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SECRETS = re.compile(r"(/mp3/|[?&;]token=)[^/?&;#\s'\"]+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` (a path, a URL, a request line) with the token of ``/mp3/<token>`` and of any
    ``token=`` query parameter replaced by ``[redacted]``."""
    return _SECRETS.sub(r"\1[redacted]", text)


class JSONFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields are kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pika").setLevel(logging.WARNING)
    # Alembic announces each plugin it loads, on its first import: no news for an operator.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
