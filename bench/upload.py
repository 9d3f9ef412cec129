"""A large multipart upload streamed through the upload use case into a blob store, in-process:
how fast, and how much the process's peak memory grows (it must not grow with the file)."""

from __future__ import annotations

import io
import os
import resource
import time
from pathlib import Path

from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.domain.options import ConversionOptions
from video2mp3.gateway.multipart import MultipartForm
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.tokens import Principal
from video2mp3.signing import DownloadLinks, Secret, SecretRing


class _NoJobs:
    """The upload path without a database: this measures the stream into the blob store."""

    def add(self, *_: object) -> None:
        return None

    def add_from_cache(self, *_: object) -> bool:
        return False

    def reserve(self, *_: object, at_least: int, wanted: int) -> int:
        return wanted

    def release(self, *_: object) -> None:
        return None


class _Body(io.RawIOBase):
    """A multipart body of ``size`` bytes of file, generated as it is read."""

    def __init__(self, boundary: str, size: int) -> None:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n\r\n'
        )
        self.parts = [head.encode()]
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.left = size
        self.block = os.urandom(1024 * 1024)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left > 0:
            chunk = self.block[: min(n, self.left, len(self.block))]
            self.left -= len(chunk)
            return chunk if not self.parts else self.parts.pop() + chunk
        chunk, self.tail = self.tail, b""
        return chunk


def upload_rss_growth(root: Path, size: int) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    form = MultipartForm(_Body("BENCH", size), "BENCH")  # type: ignore[arg-type]
    form.read_fields()
    links = DownloadLinks(SecretRing([Secret("bench", bytes(32))]), 60)
    store = LocalBlobStore(root / "up")
    gateway = Gateway(_NoJobs(), store, size + 1, links)  # type: ignore[arg-type]
    owner = Principal(1, "bench@example.com")
    gateway.upload(owner, "v.mp4", form.file_chunks(), ConversionOptions())
    elapsed = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {"seconds": round(elapsed, 2), "MBps": round(size / elapsed / 1e6, 1),
            "peak_rss_growth_MB": round(grown / 1024, 1)}  # fmt: skip
