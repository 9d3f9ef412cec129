"""Jobs port: the gateway's jobs and the outbox of events that go with them.

One transaction holds a job's change and the events it causes (the transactional outbox), so
a job and its messages never drift apart; ``relay_outbox`` publishes them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from video2mp3.domain.events import Event
from video2mp3.domain.jobs import Job
from video2mp3.domain.storage import Limits


@dataclass(frozen=True)
class Usage:
    """What one owner stores and has running."""

    owner_id: int
    email: str
    jobs: int
    active_jobs: int  # queued or processing
    video_bytes: int  # the videos still stored, those in conversion included
    mp3_bytes: int

    @property
    def stored_bytes(self) -> int:
        return self.video_bytes + self.mp3_bytes


class JobRepository(Protocol):
    def add(self, job: Job, event: Event) -> None:
        """Insert ``job`` and queue ``event`` for publishing, atomically; once its upload has
        ended (``video_size`` set) its reservation goes in the same transaction. ``Unavailable``
        if the database cannot be reached."""
        ...

    def reserve(
        self, job_id: str, owner_id: int, limits: Limits, *, at_least: int, wanted: int
    ) -> int:
        """Hold room for the upload of job ``job_id`` (a job not stored yet, or queued while its
        video arrives): at least ``at_least`` bytes, ``wanted`` if they fit within the owner's
        quota; return the bytes held. Atomic against every other reservation and job of the
        owner; called again, it grows the reservation. A new reservation counts as an active
        job until its job is stored: ``TooManyJobs`` past ``limits.max_active_jobs`` (for a new
        one), ``QuotaExceeded`` when ``at_least`` does not fit."""
        ...

    def release(self, job_id: str) -> None:
        """Drop the reservation of job ``job_id``. Idempotent."""
        ...

    def add_from_cache(self, job: Job, correlation_id: str | None, limits: Limits) -> bool:
        """Settle ``job`` with the MP3 of a live succeeded job of the same owner with the same
        ``cache_key`` and insert it with its ``job.finished`` in place of its reservation,
        atomically; ``False``, nothing written, when there is none. Without
        a reservation (nothing uploaded) it is a new job: ``TooManyJobs`` and ``QuotaExceeded``
        as for ``reserve``; with one, ``QuotaExceeded`` if its video and MP3 do not fit."""
        ...

    def find_cached(self, cache_key: str | None) -> Job | None:
        """A live succeeded job of any owner with ``cache_key``, if any."""
        ...

    def add_copy(self, job: Job, source: Job, correlation_id: str | None, limits: Limits) -> None:
        """Settle ``job`` as ``source``'s conversion, with its own copy of the MP3 (already
        stored as ``job.mp3_fid``, ``job.mp3_size``), and insert it as ``add_from_cache``
        does, with the same errors."""
        ...

    def record_upload(self, job: Job) -> None:
        """Record the size, SHA-256 and cache key of the video of ``job``, a job queued while its
        video arrived, once the upload has ended; nothing else of the stored job changes (a
        converter may have settled it meanwhile), and drop its reservation. Idempotent;
        ``Unavailable`` as for ``add``."""
        ...

    def get(self, job_id: str, owner_id: int) -> Job | None:
        """The job if it exists and belongs to ``owner_id``."""
        ...

    def by_mp3(self, mp3_fid: str, owner_id: int) -> Job | None:
        """The owner's job whose MP3 is ``mp3_fid``, if any."""
        ...

    def page(self, owner_id: int, *, limit: int, offset: int) -> tuple[list[Job], int]:
        """One page of the owner's jobs that have not expired, newest first, and their total."""
        ...

    def changed_since(self, since: datetime, limit: int = 1000) -> list[Job]:
        """Every owner's jobs updated after ``since``, oldest change first, at most ``limit``
        (what the page's live feed polls)."""
        ...

    def delete(self, job_id: str, owner_id: int) -> Job | None:
        """Delete and return the owner's job (and its unsent request), or ``None``. Idempotent."""
        ...

    def apply(self, event: Event) -> tuple[Job | None, bool]:
        """Fold a converter event into its job under a lock; return the job and whether it
        changed. The change that finishes a job queues its ``job.finished`` in the same
        transaction. Idempotent and monotonic."""
        ...

    def relay_outbox(self, publish: Callable[[str], None], batch: int = 100) -> int:
        """Publish queued events in order, deleting each once published; return how many.
        Safe to run from several processes at once; a crash may publish an event twice. If
        ``publish`` raises ``Unavailable`` it stops there and raises it; any other error
        (``NotPublished`` too) leaves that event queued, to be tried again a while later, and
        the rest go on."""
        ...

    def fail_stalled(self, before: datetime) -> list[str]:
        """Fail the jobs still ``processing`` with no news since ``before``; return their ids."""
        ...

    def release_videos(self, now: datetime, batch: int = 100) -> list[str]:
        """Detach the videos whose keeping time is over from up to ``batch`` jobs; return their
        blob ids for deletion. Safe from several processes: each id is handed out once."""
        ...

    def expire(self, now: datetime, batch: int = 100) -> list[Job]:
        """Delete and return up to ``batch`` jobs whose time is over. Safe from several
        processes: each job is deleted once."""
        ...

    def referenced(self, blob_ids: Collection[str]) -> set[str]:
        """Which of ``blob_ids`` a job holds (as its video or its MP3)."""
        ...

    def usage(self, owner_id: int | None = None) -> list[Usage]:
        """What each owner that has jobs (or only ``owner_id``) stores, by owner id."""
        ...

    def stored_bytes(self) -> dict[str, int]:
        """Stored bytes by kind (``video``, ``mp3``), each shared MP3 counted once."""
        ...

    def outbox_depth(self) -> int:
        """How many events wait to be published."""
        ...

    def ping(self) -> None:
        """Return if the database answers, else raise ``Unavailable``."""
        ...
