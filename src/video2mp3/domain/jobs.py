"""A conversion job's life cycle: queued -> processing -> succeeded | failed.

Events can arrive late, twice or out of order (at-least-once delivery, several converters), so
``Job.apply`` is idempotent and monotonic: a status never moves backwards and a finished job
never changes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from video2mp3.domain.events import (
    ConversionFailed,
    ConversionProgress,
    ConversionRequested,
    ConversionSucceeded,
    Event,
    JobFinished,
    Owner,
)
from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.storage import Retention
from video2mp3.domain.webhooks import WebhookTarget


class Status(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED})
HEARTBEAT = timedelta(seconds=30)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # stored naive, always UTC


@dataclass(eq=False)
class Job:
    """One upload and what became of it. Owned by the gateway."""

    owner_id: int
    owner_email: str  # a snapshot for notifications, taken from the upload's token
    filename: str
    video_fid: str | None = None
    options: ConversionOptions = field(default_factory=ConversionOptions)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: Status = Status.QUEUED
    progress: float = 0.0
    error_code: str | None = None
    error_message: str | None = None
    mp3_fid: str | None = None
    mp3_size: int | None = None
    duration: float | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    video_sha256: str | None = None
    video_size: int | None = None
    cache_key: str | None = None  # equal keys make equal MP3s (``domain.storage.cache_key``)
    expires_at: datetime | None = None  # the job and its MP3 go then; None: kept
    video_expires_at: datetime | None = None  # its video goes then

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def apply(self, event: Event) -> bool:
        """Fold a converter event into the job; return whether the job changed."""
        if self.finished:
            return False
        match event.data:
            case ConversionProgress(progress=p):
                p = min(max(p, 0.0), 0.99)
                if self.status is Status.PROCESSING and p <= self.progress:
                    # A retried attempt starts over: no news for the user, but proof of life
                    # for the stalled-job sweep, written now and then.
                    if utcnow() - self.updated_at < HEARTBEAT:
                        return False
                else:
                    self.status, self.progress = Status.PROCESSING, max(p, self.progress)
            case ConversionSucceeded() as d:
                self.status, self.progress = Status.SUCCEEDED, 1.0
                self.mp3_fid, self.mp3_size, self.duration = d.mp3_fid, d.size, d.duration
            case ConversionFailed() as d:
                self.status = Status.FAILED
                self.error_code, self.error_message = d.code, d.message
            case _:
                return False
        self.updated_at = utcnow()
        return True

    def stamp(self, retention: Retention) -> None:
        """Set when the settled job's video, and later the job with its MP3, are deleted."""
        assert self.finished
        self.video_expires_at = retention.video_expiry(self.updated_at) if self.video_fid else None
        self.expires_at = retention.job_expiry(self.updated_at)

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def reuse(self, source: Job, retention: Retention) -> None:
        """Settle this job with ``source``'s MP3 (a cache hit): no conversion. A video uploaded
        with it duplicates the source's and is due for deletion at once."""
        self.status, self.progress = Status.SUCCEEDED, 1.0
        self.mp3_fid, self.mp3_size = source.mp3_fid, source.mp3_size
        self.duration = source.duration
        self.updated_at = utcnow()
        self.stamp(retention)
        self.video_expires_at = self.updated_at if self.video_fid else None

    @property
    def owner(self) -> Owner:
        return Owner(id=self.owner_id, email=self.owner_email)

    def finished_event(
        self, correlation_id: str | None, webhooks: tuple[WebhookTarget, ...] = ()
    ) -> Event:
        """The ``job.finished`` event for a finished job, for its owner's ``webhooks`` too."""
        assert self.finished
        data = JobFinished(
            status=str(self.status),
            owner=self.owner,
            filename=self.filename,
            mp3_fid=self.mp3_fid,
            size=self.mp3_size,
            duration=self.duration,
            error_code=self.error_code,
            error_message=self.error_message,
            webhooks=webhooks,
            expires_at=iso(self.expires_at),
        )
        return Event(job_id=self.id, data=data, correlation_id=correlation_id)

    def requested_event(self, correlation_id: str | None, *, uploading: bool = False) -> Event:
        """The ``conversion.requested`` event that asks a converter to do this job (its video
        still ``uploading``: to be followed as it arrives)."""
        assert self.video_fid is not None
        data = ConversionRequested(
            video_fid=self.video_fid,
            owner=self.owner,
            filename=self.filename,
            options=self.options,
            uploading=uploading,
        )
        return Event(job_id=self.id, data=data, correlation_id=correlation_id)


def iso(moment: datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with its ``Z``."""
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


def stalled_event(job: Job) -> Event:
    """The ``conversion.failed`` the gateway reports for a job no converter finished."""
    failed = ConversionFailed(
        code="stalled",
        message="the conversion stopped making progress; please upload the video again",
        retryable=True,
        owner=job.owner,
        filename=job.filename,
    )
    return Event(job.id, failed)


def upload_failed_event(job: Job, why: str) -> Event:
    """The ``conversion.failed`` for a job queued while its video arrived, whose upload then
    failed: it shows as failed with the reason, never converted from half a file."""
    failed = ConversionFailed(
        code="upload_failed",
        message=f"the upload did not complete ({why}); please upload the video again",
        retryable=True,
        owner=job.owner,
        filename=job.filename,
    )
    return Event(job.id, failed)


def mp3_filename(upload_name: str) -> str:
    """The download name for an upload's MP3: the upload's stem with ``.mp3``."""
    stem = upload_name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem.strip(".") else stem
    return (stem.strip() or "audio") + ".mp3"
