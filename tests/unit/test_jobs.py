"""The job life cycle: idempotent and monotonic under late, repeated and reordered events."""

from datetime import timedelta

import pytest

from video2mp3.domain.events import (
    ConversionFailed,
    ConversionProgress,
    ConversionSucceeded,
    Event,
    Owner,
)
from video2mp3.domain.jobs import Job, Status, mp3_filename, utcnow

OWNER = Owner(1, "a@example.com")


def progress(p: float) -> Event:
    return Event("j", ConversionProgress(p))


SUCCEEDED = Event("j", ConversionSucceeded("mp3", 100, 3.0, OWNER, "a.mp4"))
FAILED = Event("j", ConversionFailed("no_audio", "no audio", False, OWNER, "a.mp4"))


def test_progress_moves_a_queued_job_to_processing() -> None:
    job = Job(owner_id=1, owner_email="a@example.com", filename="a.mp4")
    assert job.apply(progress(0.0))
    assert job.status is Status.PROCESSING


def test_progress_only_moves_forward() -> None:
    job = Job(owner_id=1, owner_email="a@example.com", filename="a.mp4")
    job.apply(progress(0.5))
    assert not job.apply(progress(0.2))
    assert job.progress == 0.5


def test_a_retry_starting_over_still_counts_as_alive() -> None:
    job = Job(owner_id=1, owner_email="a@example.com", filename="a.mp4")
    job.apply(progress(0.8))
    job.updated_at -= timedelta(minutes=5)
    assert job.apply(progress(0.1))  # written: the stalled-job sweep sees it alive
    assert (job.progress, job.updated_at > utcnow() - timedelta(seconds=5)) == (0.8, True)


def test_success_is_final_and_late_events_are_ignored() -> None:
    job = Job(owner_id=1, owner_email="a@example.com", filename="a.mp4")
    assert job.apply(SUCCEEDED)
    assert (job.status, job.progress, job.mp3_fid, job.mp3_size) == (
        Status.SUCCEEDED,
        1.0,
        "mp3",
        100,
    )
    assert not job.apply(progress(0.3))
    assert not job.apply(FAILED)
    assert not job.apply(SUCCEEDED)
    assert job.status is Status.SUCCEEDED


def test_failure_records_the_code_and_message() -> None:
    job = Job(owner_id=1, owner_email="a@example.com", filename="a.mp4")
    assert job.apply(FAILED)
    assert (job.status, job.error_code, job.error_message) == (
        Status.FAILED,
        "no_audio",
        "no audio",
    )
    assert not job.apply(SUCCEEDED)


def test_progress_never_reports_done_before_success() -> None:
    job = Job(owner_id=1, owner_email="a@example.com", filename="a.mp4")
    job.apply(progress(1.0))
    assert job.progress < 1.0


@pytest.mark.parametrize(
    ("upload", "mp3"),
    [
        ("holiday.mp4", "holiday.mp3"),
        ("C:\\videos\\talk.final.mkv", "talk.final.mp3"),
        ("../../etc/passwd", "passwd.mp3"),
        (".hidden", ".hidden.mp3"),
        ("", "audio.mp3"),
        ("Été à Paris.webm", "Été à Paris.mp3"),
        ("line\u2028two\r\nSet-Cookie: x.mp4", "line two Set-Cookie: x.mp3"),
    ],
)
def test_mp3_filename(upload: str, mp3: str) -> None:
    assert mp3_filename(upload) == mp3
