"""The gateway's use cases, free of HTTP: every front end (the JSON API, the tutorial's
endpoints, the web page, the CLI through the API) calls these with plain values.

A caller is a ``Principal`` (from a token or a session); a job or an MP3 that is not theirs is
``NotFound``, never told apart from one that does not exist. Storage stays bounded here: quotas
are checked before a byte is stored, uploads are hashed as they stream so that a video already
converted with the same options gives a finished job at once (the conversion cache), and an
expired job is ``Expired`` from the moment its time is over.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter

from video2mp3.beside import beside
from video2mp3.domain.jobs import Job, iso, upload_failed_event
from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.storage import Limits, cache_key, is_sha256
from video2mp3.domain.text import one_line
from video2mp3.errors import (
    Expired,
    InvalidRequest,
    NotFound,
    UploadNeeded,
    Video2mp3Error,
)
from video2mp3.gateway.metering import ahead, limited, reserved, too_large
from video2mp3.gateway.retitle import copy_for
from video2mp3.gateway.streaming import EarlyStart
from video2mp3.gateway.tokens import Principal
from video2mp3.logs import correlation_id
from video2mp3.ports.blobs import BlobReader, BlobStore, derived_id
from video2mp3.ports.jobs import JobRepository
from video2mp3.signing import DownloadLinks

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

log = logging.getLogger(__name__)

MAX_PAGE = 100
MAX_OFFSET = 10**9
CACHE = Counter("video2mp3_cache_lookups_total", "Conversion cache lookups", ["result"])


@dataclass(frozen=True)
class Page:
    """One page of a user's jobs, newest first."""

    items: list[Job]
    total: int
    limit: int
    offset: int


@dataclass
class Gateway:
    jobs: JobRepository
    blobs: BlobStore
    max_upload_bytes: int
    links: DownloadLinks
    on_queued: Callable[[], None] = lambda: None  # wakes the outbox relay
    quota_bytes: int = 2**62  # per user: stored videos and MP3s
    max_active_jobs: int = 2**31  # per user: queued or processing
    active_jobs_retry_seconds: int = 10  # Retry-After when max_active_jobs are active
    cache_across_owners: bool = False  # a whole upload may be served another user's MP3
    stream_after_bytes: int = 0  # queue a conversion during its upload after this much (0: never)

    @property
    def limits(self) -> Limits:
        return Limits(self.quota_bytes, self.max_active_jobs, self.active_jobs_retry_seconds)

    def upload(
        self,
        owner: Principal,
        filename: str,
        chunks: Iterable[bytes],
        options: ConversionOptions,
        *,
        content_type: str = "application/octet-stream",
        declared_size: int = 0,
    ) -> Job:
        """Store a video from ``chunks`` (streamed, never whole in memory, hashed on the way)
        and queue its conversion, or settle the job at once from the cache (its video is then
        left to the sweep: deleting a large file takes longer than the rest of a hit).

        A video a converter can read as it arrives (``streaming``) is queued during its upload;
        if the upload fails, the job fails (``upload_failed``), never converted from half a file.

        ``TooManyJobs`` and ``QuotaExceeded`` (for ``declared_size``, the least the file can
        weigh) before anything is read; ``TooLarge`` or ``QuotaExceeded`` once the stream goes
        past a limit; ``InvalidRequest`` for an empty file. Nothing stays stored when it raises,
        whatever the error (the stream's own errors included), but a job queued meanwhile.
        """
        job = Job(
            owner_id=owner.user_id,
            owner_email=owner.email,
            filename=clean_filename(filename),
            options=options,
        )
        job.video_fid = derived_id("video", job.id)
        room = self.jobs.reserve(
            job.id, owner.user_id, self.limits, at_least=declared_size, wanted=ahead(declared_size)
        )
        try:
            return self._store(job, chunks, room, content_type)
        except BaseException:
            with contextlib.suppress(Video2mp3Error):  # else it lapses (see ``reserve``)
                self.jobs.release(job.id)
            raise

    def _store(self, job: Job, chunks: Iterable[bytes], room: int, content_type: str) -> Job:
        """The rest of ``upload``, within the ``room`` reserved for ``job``."""
        early = EarlyStart(self.stream_after_bytes, lambda: self._queue(job, uploading=True))
        digest = hashlib.sha256()
        # Closed however ``put`` ends: its hashing thread stops now, not with the traceback.
        with contextlib.closing(self._metered(job, chunks, room, digest)) as metered:
            try:
                blob = self.blobs.put(
                    early.watch(metered),
                    filename=job.filename,
                    content_type=content_type,
                    blob_id=job.video_fid,
                )
            except BaseException as exc:
                if early.started:  # its converter stops: the blob is gone (put aborted it)
                    self._fail_upload(job, exc)
                raise
        job.video_sha256, job.video_size = digest.hexdigest(), blob.size
        job.cache_key = cache_key(job.video_sha256, job.options)
        if early.started:
            # A cache hit is only known now: the conversion under way is let finish rather
            # than cut short (its MP3 is counted like any other, and serves later hits).
            self.jobs.record_upload(job)
            return job
        try:
            if blob.size == 0:
                raise InvalidRequest("the uploaded file is empty")
            if not self._from_cache(job, uploaded=True):
                self._queue(job, uploading=False)
        except BaseException:
            self.blobs.delete(blob.id)
            raise
        return job

    def _metered(
        self, job: Job, chunks: Iterable[bytes], room: int, digest: Hash
    ) -> Generator[bytes, None, None]:
        """``chunks`` hashed into ``digest``, within the upload limit and the room reserved for
        ``job``, grown as the stream needs (``QuotaExceeded`` when the quota has no more)."""
        size_limited = limited(chunks, self.max_upload_bytes, too_large(self.max_upload_bytes))
        metered = reserved(self.jobs, job, self.limits, size_limited, room)
        # Hashed on another core (0.3 s of CPU per 570 MB) while the next bytes are read.
        return beside(metered, digest.update, "upload-hash")

    def _queue(self, job: Job, *, uploading: bool) -> None:
        self.jobs.add(job, job.requested_event(correlation_id.get(), uploading=uploading))
        self.on_queued()

    def _fail_upload(self, job: Job, error: BaseException) -> None:
        """Fail a job queued while its upload arrived (or its converter will: no blob comes)."""
        why = error.message if isinstance(error, Video2mp3Error) else "the connection was lost"
        try:
            self.jobs.apply(upload_failed_event(job, why))
            self.on_queued()  # its job.finished
        except Video2mp3Error as exc:
            log.warning("could not record a failed upload: %s", exc.message)

    def from_cache(
        self, owner: Principal, sha256: object, size: object, filename: object, options: object
    ) -> Job:
        """A finished job for a video the caller does not send, known by its SHA-256, when one of
        the caller's own jobs converted it with these options; else ``UploadNeeded``. A hash
        proves nothing of holding the file: another owner's conversion is never the answer.
        It is a new job: ``TooManyJobs`` and ``QuotaExceeded`` as for an upload."""
        if not is_sha256(sha256) or not isinstance(filename, str):
            raise InvalidRequest("sha256 must be 64 lowercase hex digits and filename a string")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise InvalidRequest("size must be the file's size in bytes, a positive integer")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequest("options must be a JSON object")
        chosen = ConversionOptions.parse(options or {})
        assert isinstance(sha256, str)
        job = Job(
            owner_id=owner.user_id,
            owner_email=owner.email,
            filename=clean_filename(filename),
            options=chosen,
            video_sha256=sha256,
            video_size=size,
            cache_key=cache_key(sha256, chosen),
        )
        if not self._from_cache(job):
            raise UploadNeeded("this file has not been converted with these options: upload it")
        return job

    def check_size(self, declared: int | None, overhead: int = 0) -> None:
        """``TooLarge`` at once when a declared size already exceeds the limit."""
        if declared is not None and declared > self.max_upload_bytes + overhead:
            raise too_large(self.max_upload_bytes)()

    def _from_cache(self, job: Job, *, uploaded: bool = False) -> bool:
        """Settle ``job`` from the owner's own conversions, or, for a video ``uploaded`` whole
        (its hash computed here, not told), from another owner's when the cache is shared:
        then as a copy titled from this owner's file name (``retitle``)."""
        hit = self.jobs.add_from_cache(job, correlation_id.get(), self.limits)
        if not hit and uploaded and self.cache_across_owners:
            hit = self._copied(job)
        CACHE.labels("hit" if hit else "miss").inc()
        if hit:
            log.info("served from the cache", extra={"job_id": job.id})
        return hit

    def _copied(self, job: Job) -> bool:
        source = self.jobs.find_cached(job.cache_key)
        if source is None or (copy := copy_for(self.blobs, source, job)) is None:
            return False
        job.mp3_fid, job.mp3_size = copy.id, copy.size
        try:
            self.jobs.add_copy(job, source, correlation_id.get(), self.limits)
        except BaseException:
            self.blobs.delete(copy.id)
            raise
        return True

    def page(self, owner: Principal, *, limit: int = 20, offset: int = 0) -> Page:
        """The owner's jobs, newest first."""
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise InvalidRequest(f"limit must be 1..{MAX_PAGE} and offset 0..{MAX_OFFSET}")
        items, total = self.jobs.page(owner.user_id, limit=limit, offset=offset)
        return Page(items, total, limit, offset)

    def job(self, owner: Principal, job_id: str) -> Job:
        """The owner's job; ``NotFound``, or ``Expired`` once its time is over."""
        job = self.jobs.get(job_id, owner.user_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return _live(job)

    def open_mp3(self, owner: Principal, job_id: str) -> tuple[Job, BlobReader]:
        """The job's MP3, opened; ``NotFound`` unless the owner's job has one."""
        return self._opened(self.jobs.get(job_id, owner.user_id))

    def open_mp3_by_fid(self, owner: Principal, fid: str) -> tuple[Job, BlobReader]:
        """The MP3 with blob id ``fid`` (the tutorial's download), for its owner only."""
        return self._opened(self.jobs.by_mp3(fid, owner.user_id))

    def open_link(self, token: str) -> tuple[Job, BlobReader]:
        """The MP3 a signed download link opens, with no other credential. ``NotFound`` for a
        forged link or once its job is deleted, ``Forbidden`` once it has expired."""
        target = self.links.open(token)
        return self._opened(self.jobs.by_mp3(target.mp3_fid, target.owner_id))

    def download_token(self, job: Job) -> str | None:
        """A signed, expiring token for the job's MP3 (``None`` while it has none)."""
        return self.links.token(job.owner_id, job.mp3_fid) if job.mp3_fid else None

    def delete(self, owner: Principal, job_id: str) -> None:
        """Delete the job, its video and its MP3 unless another job shares it. A conversion
        still running finds nothing later."""
        job = self.jobs.delete(job_id, owner.user_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        delete_blobs(self.jobs, self.blobs, [job])

    def _opened(self, job: Job | None) -> tuple[Job, BlobReader]:
        if job is None or job.mp3_fid is None:
            raise NotFound("no such MP3 (the job may not have finished yet)")
        return job, self.blobs.open(_live(job).mp3_fid or "")


def delete_blobs(jobs: JobRepository, blobs: BlobStore, deleted: Iterable[Job]) -> None:
    """Delete the blobs of jobs just deleted: each video, and each MP3 no other job holds.

    Asked after the jobs are gone: a cache hit locks its source row until it is committed, so
    a job reusing one of these MP3s is either seen here or never made.
    """
    deleted = list(deleted)
    mp3s = {job.mp3_fid for job in deleted if job.mp3_fid}
    kept = jobs.referenced(mp3s)
    for fid in [job.video_fid for job in deleted if job.video_fid] + sorted(mp3s - kept):
        blobs.delete(fid)


def _live(job: Job) -> Job:
    if job.expired():
        raise Expired(f"job {job.id} expired at {iso(job.expires_at)}: it and its MP3 are gone")
    return job


def clean_filename(name: str | None) -> str:
    """A display-safe file name: the last path component, on one line, bounded."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    return one_line(name, limit=200) or "upload"
