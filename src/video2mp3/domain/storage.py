"""What keeps storage bounded: how long videos and MP3s are kept, and the conversion cache's key.

A duration setting reads like ``0``, ``45s``, ``90m``, ``12h`` or ``7d``. A job gets its expiry
times when it is settled (``Retention.stamp``): its video may go at once, its MP3 and row later.
The cache key names what a conversion depends on, the video's bytes and the options, so that
two jobs with the same key would produce the same MP3.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import QuotaExceeded, TooManyJobs

_DURATION = re.compile(r"^(\d{1,9})([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_duration(text: str | int | timedelta) -> timedelta:
    """``0``, ``45s``, ``90m``, ``12h``, ``7d`` (a bare number is seconds) as a ``timedelta``;
    ``ValueError`` with a hint otherwise."""
    if isinstance(text, timedelta):
        return text
    match = _DURATION.match(str(text).strip().lower())
    if match is None:
        raise ValueError("give a duration like 0, 45s, 90m, 12h or 7d")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def is_sha256(text: object) -> bool:
    return isinstance(text, str) and _SHA256.match(text) is not None


def cache_key(video_sha256: str, options: ConversionOptions) -> str:
    """One key per (video bytes, options): equal keys make equal MP3s."""
    canonical = json.dumps(options.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{video_sha256}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Retention:
    """How long a settled job keeps its video and its MP3 (``None``: for ever)."""

    keep_videos_for: timedelta = timedelta(0)
    keep_mp3s_for: timedelta | None = timedelta(days=7)

    def video_expiry(self, settled_at: datetime) -> datetime:
        return settled_at + self.keep_videos_for

    def job_expiry(self, settled_at: datetime) -> datetime | None:
        return None if self.keep_mp3s_for is None else settled_at + self.keep_mp3s_for


@dataclass(frozen=True)
class Limits:
    """One owner's bounds: the bytes stored (videos, MP3s and the uploads under way, each
    counted at what it has reserved) and the jobs waiting or converting."""

    quota_bytes: int = 2**62
    max_active_jobs: int = 2**31
    retry_seconds: int = 10  # Retry-After when max_active_jobs are active

    def admit(self, active: int, stored: int, at_least: int, wanted: int, *, new_job: bool) -> int:
        """The bytes granted to a job that needs ``at_least`` (and would like ``wanted``) on top
        of an owner's ``stored`` bytes and ``active`` jobs: ``TooManyJobs`` for a ``new_job``
        past the active limit, ``QuotaExceeded`` when ``at_least`` does not fit."""
        if new_job and active >= self.max_active_jobs:
            raise TooManyJobs(
                f"you have {active} jobs waiting or converting, the most allowed;"
                " upload again when one has finished",
                retry_after=self.retry_seconds,
            )
        if stored + at_least > self.quota_bytes:
            raise self.over_quota(stored)
        return max(at_least, min(wanted, self.quota_bytes - stored))

    def over_quota(self, stored: int | None = None) -> QuotaExceeded:
        used = "" if stored is None else f" ({stored} used)"
        return QuotaExceeded(
            f"this would take your storage past its quota of {self.quota_bytes} bytes{used}:"
            " delete jobs you no longer need"
        )
