"""The error hierarchy: every error a user or an operator can see has a stable ``code``.

Adapters translate library exceptions into these; the HTTP layer maps them to statuses with
``HTTP_STATUS``; the converter puts ``code``/``message``/``retryable`` into ``conversion.failed``.
"""

from __future__ import annotations


class Video2mp3Error(Exception):
    """Root of every error the project raises on purpose."""

    code = "internal_error"
    retryable = False
    retry_after: int | None = None  # seconds; sent as Retry-After when set

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class SettingsError(Video2mp3Error):
    """A setting is missing or malformed; the service cannot start."""

    code = "invalid_setting"


class InvalidRequest(Video2mp3Error):
    """The client sent something we cannot use (bad JSON, missing field, bad option)."""

    code = "invalid_request"


class Unauthorized(Video2mp3Error):
    """Missing, expired or forged credentials."""

    code = "unauthorized"


class Forbidden(Video2mp3Error):
    """The caller is known but not allowed to do this."""

    code = "forbidden"


class NotFound(Video2mp3Error):
    """No such resource, or not the caller's (we never tell the two apart)."""

    code = "not_found"


class Conflict(Video2mp3Error):
    """The resource already exists."""

    code = "conflict"


class TooLarge(Video2mp3Error):
    """An upload exceeds the configured limit."""

    code = "too_large"


class UploadNeeded(Conflict):
    """The cache holds no conversion of that video with those options: upload the file."""

    code = "upload_needed"


class Expired(Video2mp3Error):
    """The job and its MP3 were kept for the configured time, and that time is over."""

    code = "expired"


class QuotaExceeded(TooLarge):
    """Storing this would take the user past their storage quota."""

    code = "quota_exceeded"


class TooManyJobs(Video2mp3Error):
    """The user has as many jobs waiting or converting as allowed; retry after ``retry_after``."""

    code = "too_many_jobs"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BlobNotFound(NotFound):
    """No blob with this id in the blob store."""

    code = "blob_not_found"


class BlobStalled(Video2mp3Error):
    """A blob followed while it is written got no new byte for too long: its writer stalled."""

    code = "upload_stalled"


class InvalidEvent(Video2mp3Error):
    """A message body is not a valid event envelope; it can never succeed."""

    code = "invalid_event"


class MediaError(Video2mp3Error):
    """The input cannot be converted; ``code`` says why (``invalid_media``, ``no_audio``...)."""

    code = "invalid_media"


class Unavailable(Video2mp3Error):
    """A dependency (broker, database, blob store, SMTP) is unreachable; try again later."""

    code = "unavailable"
    retryable = True


class NotPublished(Unavailable):
    """The bus certainly did not take a message (no queue for it, or the broker refused it)."""

    code = "not_published"


class ConversionTimeout(Video2mp3Error):
    """ffmpeg ran past the configured wall-clock limit."""

    code = "timeout"


HTTP_STATUS: dict[type[Video2mp3Error], int] = {
    InvalidRequest: 422,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Expired: 410,
    TooManyJobs: 429,
    Unavailable: 503,
}


def http_status(error: Video2mp3Error) -> int:
    """The HTTP status for ``error``: the closest entry in ``HTTP_STATUS`` up its class tree."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
