"""Uploads stream: 200 MB through the multipart parser and through the gateway's HTTP app, with the
peak of Python's allocations (tracemalloc) bounded far below the upload's size.

A memory check, not a timing one: a parser or route that buffered the file would peak at the
file's size at least.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from video2mp3 import bootstrap, signing
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.adapters.identity.inprocess import InProcessIdentity
from video2mp3.auth.keys import generate
from video2mp3.gateway.multipart import MultipartForm
from video2mp3.settings import load

SIZE = 200 * 1024 * 1024
PEAK = 24 * 1024 * 1024  # the parser's 1 MB buffer and a few reads, with room to spare
BOUNDARY = "memoryBoundary42"
PIECE = bytes(range(256)) * 1024  # 256 KiB


class MultipartBody(io.RawIOBase):
    """A seekable multipart body with ``size`` bytes of file data, made as it is read."""

    def __init__(self, size: int) -> None:
        self._head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"'
            "\r\nContent-Type: video/mp4\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self._size = size
        self.length = len(self._head) + size + len(self._tail)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.length}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        pos, head = self._pos, len(self._head)
        if pos < head:
            piece = self._head[pos:]
        elif pos < head + self._size:
            offset = (pos - head) % len(PIECE)
            piece = PIECE[offset : offset + head + self._size - pos]
        else:
            piece = self._tail[pos - head - self._size :]
        n = min(len(buffer), len(piece))
        buffer[:n] = piece[:n]
        self._pos += n
        return n


def peak_while(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_multipart_parser_streams_200_mb_into_the_blob_store(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    stored = []

    def upload() -> None:
        form = MultipartForm(MultipartBody(SIZE), BOUNDARY)
        assert form.read_fields() == {}
        stored.append(blobs.put(form.file_chunks(), filename="big.mp4", content_type="video/mp4"))

    peak = peak_while(upload)
    [blob] = stored
    assert blob.size == SIZE
    assert (blobs.root / blob.id).stat().st_size == SIZE
    assert peak < PEAK, f"peak {peak / 1e6:.0f} MB for a {SIZE / 1e6:.0f} MB upload"


def test_the_gateway_streams_a_200_mb_upload(tmp_path: Path) -> None:
    generate(tmp_path / "keys")
    signing.generate(tmp_path / "link-keys")
    settings = load(
        link_key_dir=tmp_path / "link-keys",
        auth_db_url=f"sqlite:///{tmp_path}/auth.db",
        jobs_db_url=f"sqlite:///{tmp_path}/jobs.db",
        blob_dir=tmp_path / "blobs",
        jwt_key_dir=tmp_path / "keys",
        mongodb_url=None,
    )
    bootstrap.create_schemas(settings, "auth", "gateway")
    identity = InProcessIdentity(bootstrap.accounts(settings))
    blobs = bootstrap.blob_store(settings, "test")
    app = bootstrap.gateway_app(settings, identity, bootstrap.jobs(settings), blobs)
    client = app.test_client()
    client.post("/api/v1/users", json={"email": "big@example.com", "password": "pw-123456"})
    token = client.post("/login", auth=("big@example.com", "pw-123456")).text
    body = MultipartBody(SIZE)
    responses = []
    peak = peak_while(
        lambda: responses.append(
            client.post(
                "/api/v1/jobs",
                input_stream=body,
                content_length=body.length,
                content_type=f"multipart/form-data; boundary={BOUNDARY}",
                headers={"Authorization": f"Bearer {token}"},
            )
        )
    )
    [response] = responses
    assert response.status_code == 202, response.get_json()
    assert isinstance(blobs, LocalBlobStore)
    stored = [p for p in blobs.root.iterdir() if p.is_file() and not p.suffix]
    assert [p.stat().st_size for p in stored] == [SIZE]
    assert peak < PEAK, f"peak {peak / 1e6:.0f} MB for a {SIZE / 1e6:.0f} MB upload"
