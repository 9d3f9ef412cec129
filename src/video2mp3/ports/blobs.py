"""Blob store port: large immutable files (uploaded videos, MP3s), streamed in and out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, Self

CHUNK_SIZE = 255 * 1024  # GridFS's default chunk size; also the read size when streaming blobs


def derived_id(*parts: str) -> str:
    """A blob id that ``parts`` always give (24 hex digits, a valid id for every store): the MP3
    of job ``j`` is ``derived_id("mp3", j)``, however often it is converted."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class BlobInfo:
    """What the store knows about a blob besides its bytes."""

    id: str
    size: int
    filename: str
    content_type: str


class BlobReader(Protocol):
    """An open blob: a seekable binary stream with its ``info``."""

    info: BlobInfo

    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...


class BlobStore(Protocol):
    def put(
        self,
        chunks: Iterable[bytes],
        *,
        filename: str,
        content_type: str,
        blob_id: str | None = None,
    ) -> BlobInfo:
        """Store ``chunks`` as a new blob and return its info.

        Atomic: the blob is visible only once complete. If ``chunks`` raises, nothing is kept
        and the error propagates. Raises ``Unavailable`` when the store cannot be reached.
        With a ``blob_id`` (from ``derived_id``), idempotent: when that blob exists already it
        is kept, ``chunks`` are not stored, and its info is returned, so retries of one piece
        of work leave one blob.
        """
        ...

    def follow(self, blob_id: str, *, stall_seconds: float) -> Iterator[bytes]:
        """The blob's bytes in order, as the ``put`` with this ``blob_id`` stores them: waits
        (polling) while its writer writes, ends once the blob is complete. Works as well on a
        blob complete already. For one writer per id.

        Raises ``BlobNotFound`` when no byte of it is stored yet, or once its writer has aborted
        (or the blob was deleted), whatever was given before: the follower must drop that;
        ``BlobStalled`` when no byte arrives for ``stall_seconds``; ``Unavailable`` when the
        store cannot be reached.
        """
        ...

    def follow_linked(
        self, blob_id: str, link: Path, *, stall_seconds: float
    ) -> Iterator[int] | None:
        """``follow`` without copying, for a store that keeps blobs as files on this machine:
        the blob's file, complete or being written, is hard-linked at ``link`` (a second name
        of the same bytes: never write to it), and the sizes it reaches are yielded as they
        grow, ending at its whole size. Raises as ``follow`` does (``BlobNotFound`` at once
        when no byte of it is stored). ``None`` when the store cannot link it there (a remote
        store, another filesystem): follow it, and copy what that gives."""
        ...

    def open(self, blob_id: str) -> BlobReader:
        """Open a blob for reading. Raises ``BlobNotFound`` for an unknown or malformed id."""
        ...

    def local_path(self, blob_id: str) -> Path | None:
        """The blob's file, when this store keeps blobs as files on this machine, so that a
        reader can use it where it lies (never write to it); ``None`` for a remote store.
        Raises ``BlobNotFound`` for an unknown blob."""
        ...

    def delete(self, blob_id: str) -> None:
        """Delete a blob. Idempotent: deleting a missing blob is not an error."""
        ...

    def stored_before(self, moment: datetime) -> Iterator[str]:
        """The ids of the complete blobs stored before ``moment`` (naive UTC), in no order.
        For the orphan collector: a blob no job references once it is this old is garbage."""
        ...

    def ping(self) -> None:
        """Return if the store is reachable, else raise ``Unavailable``."""
        ...
