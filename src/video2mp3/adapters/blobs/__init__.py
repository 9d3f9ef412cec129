"""Blob store adapters: ``GridFSBlobStore`` (MongoDB) and ``LocalBlobStore`` (a directory)."""

from __future__ import annotations

from typing import IO, Self

from video2mp3.ports.blobs import BlobInfo


class Reader:
    """A seekable binary stream plus the blob's info; satisfies ``BlobReader``."""

    def __init__(self, stream: IO[bytes], info: BlobInfo) -> None:
        self._stream = stream
        self.info = info

    def read(self, size: int = -1, /) -> bytes:
        return self._stream.read(size)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
