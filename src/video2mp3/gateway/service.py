"""The gateway's use cases, independent of HTTP: upload, list, show, download and delete jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from video2mp3.domain.jobs import Job
from video2mp3.errors import InvalidRequest, NotFound, TooLarge
from video2mp3.gateway.jobs import JobRepository
from video2mp3.gateway.tokens import Principal
from video2mp3.gateway.uploads import store_upload
from video2mp3.logs import correlation_id
from video2mp3.ports.blobs import BlobReader, BlobStore

# The bitrates an MPEG-1 Layer III stream can have; default is LAME's VBR -V2 (about 190 kbps).
BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
MULTIPART_OVERHEAD = 64 * 1024


def parse_bitrate(value: str | None) -> int | None:
    """``None`` for the default quality, else a valid MP3 bitrate in kbps."""
    if value in (None, ""):
        return None
    try:
        kbps = int(str(value).lower().removesuffix("k"))
    except ValueError:
        kbps = -1
    if kbps not in BITRATES:
        raise InvalidRequest(f"bitrate must be one of {', '.join(map(str, BITRATES))} (kbps)")
    return kbps


@dataclass
class Gateway:
    jobs: JobRepository
    blobs: BlobStore
    max_upload_bytes: int
    on_queued: Callable[[], None] = lambda: None  # wakes the outbox relay

    def upload(
        self,
        owner: Principal,
        body: IO[bytes],
        *,
        boundary: str | None,
        content_length: int | None,
        bitrate: str | None,
    ) -> Job:
        """Store an uploaded video and queue its conversion (job row + outbox, one transaction)."""
        if not boundary:
            raise InvalidRequest("send the video as multipart/form-data in a field named 'file'")
        if content_length and content_length > self.max_upload_bytes + MULTIPART_OVERHEAD:
            raise TooLarge(f"the upload exceeds the limit of {self.max_upload_bytes} bytes")
        kbps = parse_bitrate(bitrate)  # checked before the upload is stored
        upload = store_upload(body, boundary, self.blobs, self.max_upload_bytes)
        if upload.blob is None:
            raise InvalidRequest("the body holds no file: send it in a field named 'file'")
        try:
            kbps = parse_bitrate(upload.fields.get("bitrate")) or kbps
            if upload.blob.size == 0:
                raise InvalidRequest("the uploaded file is empty")
            job = Job(
                owner_id=owner.user_id,
                owner_email=owner.email,
                filename=upload.blob.filename,
                video_fid=upload.blob.id,
                bitrate_kbps=kbps,
            )
            self.jobs.add(job, job.requested_event(correlation_id.get()))
        except BaseException:
            self.blobs.delete(upload.blob.id)
            raise
        self.on_queued()
        return job

    def job(self, owner: Principal, job_id: str) -> Job:
        job = self.jobs.get(job_id, owner.user_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def open_mp3(self, owner: Principal, job: Job | None) -> tuple[Job, BlobReader]:
        """The job's MP3, opened; ``NotFound`` unless the owner's job has one."""
        if job is None or job.owner_id != owner.user_id or job.mp3_fid is None:
            raise NotFound("no such MP3 (the job may not have finished yet)")
        return job, self.blobs.open(job.mp3_fid)

    def mp3_by_fid(self, owner: Principal, fid: str) -> tuple[Job, BlobReader]:
        return self.open_mp3(owner, self.jobs.by_mp3(fid, owner.user_id))

    def delete(self, owner: Principal, job_id: str) -> None:
        """Delete the job and both its blobs. A conversion still running finds nothing later."""
        job = self.jobs.delete(job_id, owner.user_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        for fid in (job.video_fid, job.mp3_fid):
            if fid:
                self.blobs.delete(fid)
