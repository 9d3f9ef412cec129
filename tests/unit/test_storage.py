"""Retention durations, expiry stamps and the cache key."""

from datetime import datetime, timedelta

import pytest

from video2mp3.domain.events import ConversionSucceeded, Event, Owner
from video2mp3.domain.jobs import Job
from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.storage import Retention, cache_key, is_sha256, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("45", 45),
        ("45s", 45),
        ("90m", 5400),
        ("12h", 43200),
        ("7d", 604800),
        (" 7D ", 604800),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "-1", "1w", "1.5h", "h", "7 days", "1h30m"])
def test_bad_durations_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="like 0, 45s, 90m, 12h or 7d"):
        parse_duration(text)


def test_a_settled_job_is_stamped_with_its_expiry() -> None:
    job = Job(owner_id=1, owner_email="a@x", filename="a.mp4", video_fid="v")
    owner = Owner(1, "a@x")
    job.apply(Event(job.id, ConversionSucceeded("m", 1, 1.0, owner, "a.mp4")))
    job.stamp(Retention(keep_videos_for=timedelta(hours=1), keep_mp3s_for=timedelta(days=2)))
    assert job.video_expires_at == job.updated_at + timedelta(hours=1)
    assert job.expires_at == job.updated_at + timedelta(days=2)
    assert not job.expired(job.updated_at + timedelta(days=1))
    assert job.expired(job.updated_at + timedelta(days=2))
    job.stamp(Retention(keep_mp3s_for=None))
    assert job.expires_at is None
    assert not job.expired(datetime(9999, 1, 1))


def test_the_cache_key_depends_on_the_bytes_and_every_option() -> None:
    sha = "a" * 64
    assert is_sha256(sha)
    assert not is_sha256("A" * 64)
    assert not is_sha256(None)
    plain = cache_key(sha, ConversionOptions())
    assert plain == cache_key(sha, ConversionOptions.parse({}))
    assert plain != cache_key("b" * 64, ConversionOptions())
    assert plain != cache_key(sha, ConversionOptions(bitrate=128))
    assert plain != cache_key(sha, ConversionOptions.parse({"title": "Song"}))
