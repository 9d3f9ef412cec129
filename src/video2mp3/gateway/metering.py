"""Uploads measured as they stream: the size limit, and the room reserved for an upload in the
owner's quota, grown as the stream needs it (``JobRepository.reserve`` holds it atomically)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from video2mp3.domain.jobs import Job
from video2mp3.domain.storage import Limits
from video2mp3.errors import TooLarge, Video2mp3Error
from video2mp3.ports.jobs import JobRepository


def limited(
    chunks: Iterable[bytes], max_bytes: int, too_much: Callable[[], Video2mp3Error]
) -> Iterator[bytes]:
    """``chunks``, raising ``too_much()`` once more than ``max_bytes`` have passed."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise too_much()
        yield chunk


def too_large(max_bytes: int) -> Callable[[], TooLarge]:
    return lambda: TooLarge(f"the upload exceeds the limit of {max_bytes} bytes")


def ahead(size: int) -> int:
    """What to reserve for an upload of ``size`` bytes so far: a little more, so that a stream
    of unknown length asks again only as its size grows by an eighth (or 1 MiB)."""
    return size + max(2**20, size // 8)


def reserved(
    jobs: JobRepository, job: Job, limits: Limits, chunks: Iterable[bytes], room: int
) -> Iterator[bytes]:
    """``chunks``, growing ``job``'s reservation (``room`` bytes so far) before they pass it:
    ``QuotaExceeded`` once the owner's quota has no more."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > room:
            room = jobs.reserve(job.id, job.owner_id, limits, at_least=total, wanted=ahead(total))
        yield chunk
