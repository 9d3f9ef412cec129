"""The gateway's use cases, free of HTTP: every front end (the JSON API, the tutorial's
endpoints, the web page, the CLI through the API) calls these with plain values.

A caller is a ``Principal`` (from a token or a session); a job or an MP3 that is not theirs is
``NotFound``, never told apart from one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from video2mp3.domain.jobs import Job
from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.text import one_line
from video2mp3.errors import InvalidRequest, NotFound, TooLarge
from video2mp3.gateway.tokens import Principal
from video2mp3.logs import correlation_id
from video2mp3.ports.blobs import BlobReader, BlobStore
from video2mp3.ports.jobs import JobRepository
from video2mp3.signing import DownloadLinks

MAX_PAGE = 100
MAX_OFFSET = 10**9


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

    def upload(
        self,
        owner: Principal,
        filename: str,
        chunks: Iterable[bytes],
        options: ConversionOptions,
        *,
        content_type: str = "application/octet-stream",
    ) -> Job:
        """Store a video from ``chunks`` (streamed, never whole in memory) and queue its
        conversion: the job row and its request are written in one transaction.

        ``TooLarge`` past the upload limit, ``InvalidRequest`` for an empty file; nothing stays
        stored when it raises, whatever the error (the stream's own errors included).
        """
        blob = self.blobs.put(
            limited(chunks, self.max_upload_bytes, "the upload"),
            filename=clean_filename(filename),
            content_type=content_type,
        )
        try:
            if blob.size == 0:
                raise InvalidRequest("the uploaded file is empty")
            job = Job(
                owner_id=owner.user_id,
                owner_email=owner.email,
                filename=blob.filename,
                video_fid=blob.id,
                options=options,
            )
            self.jobs.add(job, job.requested_event(correlation_id.get()))
        except BaseException:
            self.blobs.delete(blob.id)
            raise
        self.on_queued()
        return job

    def check_size(self, declared: int | None, overhead: int = 0) -> None:
        """``TooLarge`` at once when a declared size already exceeds the limit."""
        if declared is not None and declared > self.max_upload_bytes + overhead:
            raise TooLarge(f"the upload exceeds the limit of {self.max_upload_bytes} bytes")

    def page(self, owner: Principal, *, limit: int = 20, offset: int = 0) -> Page:
        """The owner's jobs, newest first."""
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise InvalidRequest(f"limit must be 1..{MAX_PAGE} and offset 0..{MAX_OFFSET}")
        items, total = self.jobs.page(owner.user_id, limit=limit, offset=offset)
        return Page(items, total, limit, offset)

    def job(self, owner: Principal, job_id: str) -> Job:
        job = self.jobs.get(job_id, owner.user_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

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
        """Delete the job and both its blobs. A conversion still running finds nothing later."""
        job = self.jobs.delete(job_id, owner.user_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        for fid in (job.video_fid, job.mp3_fid):
            if fid:
                self.blobs.delete(fid)

    def _opened(self, job: Job | None) -> tuple[Job, BlobReader]:
        if job is None or job.mp3_fid is None:
            raise NotFound("no such MP3 (the job may not have finished yet)")
        return job, self.blobs.open(job.mp3_fid)


def clean_filename(name: str | None) -> str:
    """A display-safe file name: the last path component, on one line, bounded."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    return one_line(name, limit=200) or "upload"


def limited(chunks: Iterable[bytes], max_bytes: int, what: str) -> Iterator[bytes]:
    """``chunks``, raising ``TooLarge`` once more than ``max_bytes`` have passed."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise TooLarge(f"{what} exceeds the limit of {max_bytes} bytes")
        yield chunk
