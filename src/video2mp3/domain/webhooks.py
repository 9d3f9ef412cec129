"""Webhooks: a user's HTTP endpoints, told when their jobs end (per Standard Webhooks).

The gateway owns the registrations; when it settles a job it puts the owner's matching endpoints
(``WebhookTarget``: id, URL, secret) into ``job.finished``, so the notifier delivers without
reading the gateway's database, to the endpoints that existed when the job ended. The payload
follows the specification's shape (``type``, ``timestamp``, ``data``); ``RETRY_DELAYS`` is its
reference schedule (about 27 hours in all).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

EVENTS = ("job.succeeded", "job.failed")
MAX_PER_USER = 5
MAX_URL = 2048  # characters of an endpoint's URL: the size of the columns that hold it
# The pauses before each retry: the schedule Standard Webhooks' reference implementation uses.
RETRY_DELAYS = tuple(timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, 36000, 36000))
DISABLE_AFTER = timedelta(days=3)  # an endpoint failing this long is disabled
TIMEOUT_SECONDS = 5.0
EXCERPT_BYTES = 500  # of a receiver's answer, kept for its owner to debug


def new_secret() -> str:
    """A signing secret in the specification's format: ``whsec_`` and 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(eq=False)
class Webhook:
    """One registered endpoint; ``secret`` signs every delivery to it."""

    owner_id: int
    url: str
    events: tuple[str, ...]
    id: str = field(default_factory=lambda: f"wh_{uuid.uuid4().hex}")
    secret: str = field(default_factory=new_secret)
    created_at: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


@dataclass(frozen=True)
class WebhookTarget:
    """Where one ``job.finished`` goes: carried in the event, so the notifier needs no lookup."""

    id: str
    url: str
    secret: str


def event_type(status: str) -> str:
    """The webhook event for a finished job's status."""
    return "job.succeeded" if status == "succeeded" else "job.failed"


def excerpt(body: bytes) -> str:
    """The start of a receiver's answer, as text, short enough to keep."""
    text = body[:EXCERPT_BYTES].decode("utf-8", "replace")
    return text + ("…" if len(body) > EXCERPT_BYTES else "")


def payload(
    *,
    status: str,
    job_id: str,
    occurred_at: str,
    filename: str,
    duration: float | None,
    size: int | None,
    error_code: str | None,
    error_message: str | None,
    download_url: str | None,
) -> dict[str, Any]:
    """The JSON body of a delivery."""
    error = {"code": error_code, "message": error_message} if error_code else None
    return {
        "type": event_type(status),
        "timestamp": occurred_at,
        "data": {
            "job_id": job_id,
            "status": status,
            "filename": filename,
            "duration": duration,
            "size": size,
            "error": error,
            "download_url": download_url,
        },
    }
