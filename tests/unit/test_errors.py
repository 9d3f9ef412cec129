"""Every error maps to one HTTP status through the class tree."""

from video2mp3.errors import (
    BlobNotFound,
    Conflict,
    InvalidRequest,
    MediaError,
    TooLarge,
    Unauthorized,
    Unavailable,
    http_status,
)


def test_statuses() -> None:
    assert http_status(InvalidRequest("x")) == 422
    assert http_status(Unauthorized("x")) == 401
    assert http_status(BlobNotFound("x")) == 404  # a NotFound
    assert http_status(Conflict("x")) == 409
    assert http_status(TooLarge("x")) == 413
    assert http_status(Unavailable("x")) == 503
    assert http_status(MediaError("x")) == 500


def test_codes_are_stable_and_overridable() -> None:
    assert MediaError("x").code == "invalid_media"
    assert MediaError("x", code="no_audio").code == "no_audio"
    assert Unavailable("x").retryable
    assert not MediaError("x").retryable
