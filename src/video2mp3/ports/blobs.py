"""Blob store port: large immutable files (uploaded videos, MP3s), streamed in and out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

CHUNK_SIZE = 255 * 1024  # GridFS's default chunk size; also the read size when streaming blobs


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
    def put(self, chunks: Iterable[bytes], *, filename: str, content_type: str) -> BlobInfo:
        """Store ``chunks`` as a new blob and return its info.

        Atomic: the blob is visible only once complete. If ``chunks`` raises, nothing is kept
        and the error propagates. Raises ``Unavailable`` when the store cannot be reached.
        """
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

    def ping(self) -> None:
        """Return if the store is reachable, else raise ``Unavailable``."""
        ...
