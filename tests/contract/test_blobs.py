"""One contract for every blob store: LocalBlobStore and GridFSBlobStore pass the same tests.

GridFS runs against nx-27017 here (small files: it answers a large download in one reply), and
against a real mongod whenever TEST_MONGODB_URL is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from video2mp3.adapters.blobs.gridfs import GridFSBlobStore
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.domain.jobs import utcnow
from video2mp3.errors import BlobNotFound
from video2mp3.ports.blobs import BlobStore, derived_id

DATA = os.urandom(700_000)  # several GridFS chunks


def chunks(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class Boom(Exception):
    pass


def failing_after(data: bytes | list[bytes]) -> Iterator[bytes]:
    yield from [data] if isinstance(data, bytes) else data
    raise Boom


class BlobStoreContract:
    @pytest.fixture
    def store(self) -> BlobStore:
        raise NotImplementedError

    def test_put_then_read_back(self, store: BlobStore) -> None:
        info = store.put(chunks(DATA), filename="clip.mp4", content_type="video/mp4")
        assert (info.size, info.filename, info.content_type) == (len(DATA), "clip.mp4", "video/mp4")
        with store.open(info.id) as reader:
            assert reader.info == info
            assert reader.read() == DATA

    def test_seek_and_partial_reads(self, store: BlobStore) -> None:
        info = store.put(chunks(DATA), filename="a", content_type="audio/mpeg")
        with store.open(info.id) as reader:
            reader.seek(300_001)
            assert reader.read(1000) == DATA[300_001:301_001]
            reader.seek(0)
            assert reader.read(10) == DATA[:10]

    def test_empty_blob(self, store: BlobStore) -> None:
        info = store.put(iter([]), filename="empty", content_type="x/y")
        with store.open(info.id) as reader:
            assert (reader.info.size, reader.read()) == (0, b"")

    def test_ids_are_unique(self, store: BlobStore) -> None:
        ids = {store.put(iter([b"same"]), filename="a", content_type="x").id for _ in range(3)}
        assert len(ids) == 3

    def test_a_failed_upload_leaves_nothing_visible(self, store: BlobStore) -> None:
        before = self.count(store)
        with pytest.raises(Boom):
            store.put(failing_after(DATA[:300_000]), filename="a", content_type="x")
        assert self.count(store) == before

    def test_delete_is_idempotent(self, store: BlobStore) -> None:
        info = store.put(iter([b"abc"]), filename="a", content_type="x")
        store.delete(info.id)
        store.delete(info.id)
        with pytest.raises(BlobNotFound):
            store.open(info.id)

    @pytest.mark.parametrize("bad_id", ["0" * 24, "f" * 32, "../../etc/passwd", "", "zz"])
    def test_unknown_or_malformed_ids_are_not_found(self, store: BlobStore, bad_id: str) -> None:
        with pytest.raises(BlobNotFound):
            store.open(bad_id)
        store.delete(bad_id)  # no error

    def test_a_local_file_holds_the_blob_or_there_is_none(self, store: BlobStore) -> None:
        info = store.put(chunks(DATA), filename="v.mp4", content_type="video/mp4")
        path = store.local_path(info.id)
        if isinstance(store, LocalBlobStore):
            assert path is not None
            assert path.read_bytes() == DATA
            store.delete(info.id)
            with pytest.raises(BlobNotFound):
                store.local_path(info.id)
        else:
            assert path is None

    def test_ping(self, store: BlobStore) -> None:
        store.ping()

    def test_a_put_with_an_id_keeps_the_first_blob(self, store: BlobStore) -> None:
        blob_id = derived_id("mp3", str(uuid.uuid4()))
        before = self.count(store)
        first = store.put(
            chunks(DATA), filename="a.mp3", content_type="audio/mpeg", blob_id=blob_id
        )
        again = store.put(
            iter([b"retry"]), filename="a.mp3", content_type="audio/mpeg", blob_id=blob_id
        )
        assert first.id == again.id == blob_id
        assert again == first
        with store.open(blob_id) as reader:
            assert reader.read() == DATA
        store.delete(blob_id)
        assert self.count(store) == before
        # Deleted, the id can be stored again (a job converted anew).
        store.put(iter([b"new"]), filename="a.mp3", content_type="audio/mpeg", blob_id=blob_id)
        with store.open(blob_id) as reader:
            assert reader.read() == b"new"

    def test_a_failed_put_with_an_id_leaves_nothing(self, store: BlobStore) -> None:
        blob_id = derived_id("mp3", str(uuid.uuid4()))
        before = self.count(store)
        with pytest.raises(Boom):
            store.put(
                failing_after(DATA[:300_000]), filename="a", content_type="x", blob_id=blob_id
            )
        assert self.count(store) == before
        with pytest.raises(BlobNotFound):
            store.open(blob_id)

    def test_blobs_are_listed_by_age(self, store: BlobStore) -> None:
        info = store.put(iter([b"abc"]), filename="a", content_type="x")
        assert info.id in set(store.stored_before(utcnow() + timedelta(seconds=5)))
        assert info.id not in set(store.stored_before(utcnow() - timedelta(hours=1)))

    def count(self, store: BlobStore) -> int:
        raise NotImplementedError


class TestLocalBlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return LocalBlobStore(tmp_path)

    def test_a_blob_whose_writer_died_before_its_metadata_is_completed(
        self, store: LocalBlobStore
    ) -> None:
        blob_id = derived_id("mp3", "job-1")
        (store.root / blob_id).write_bytes(b"complete data")  # linked, then the writer died
        with pytest.raises(BlobNotFound):
            store.open(blob_id)
        info = store.put(
            iter([b"retry"]), filename="a.mp3", content_type="audio/mpeg", blob_id=blob_id
        )
        assert (info.id, info.size) == (blob_id, len(b"complete data"))
        with store.open(blob_id) as reader:
            assert reader.read() == b"complete data"

    def count(self, store: BlobStore) -> int:
        assert isinstance(store, LocalBlobStore)
        return sum(1 for p in store.root.rglob("*") if p.is_file())


class TestGridFSBlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self, mongodb_url: str) -> Iterator[BlobStore]:
        store = GridFSBlobStore(mongodb_url)
        yield store
        store.close()

    def count(self, store: BlobStore) -> int:
        assert isinstance(store, GridFSBlobStore)
        return len(list(store._bucket.find({})))

    def test_chunks_left_by_a_killed_writer_do_not_spoil_the_retry(
        self, store: GridFSBlobStore
    ) -> None:
        blob_id = derived_id("mp3", str(uuid.uuid4()))
        # (nx-27017 also makes a files document for these chunks; mongod does not.)
        store._chunks.insert_one({"files_id": ObjectId(blob_id), "n": 0, "data": b"stale"})
        store.put(chunks(DATA), filename="a.mp3", content_type="audio/mpeg", blob_id=blob_id)
        with store.open(blob_id) as reader:
            assert reader.read() == DATA

    def test_an_aborted_upload_leaves_no_chunk_behind(
        self, store: BlobStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past the client's 48 MB write buffer, chunks reach the server before the failure:
        they must be deleted, not only left without a file. (Chunks are looked up by
        ``files_id``: nx-27017 cannot count fs.chunks otherwise.)"""
        assert isinstance(store, GridFSBlobStore)
        bucket, uploads = store._bucket, []

        def recorded(*args: Any, **kwargs: Any) -> Any:
            uploads.append(open_upload_stream(*args, **kwargs))
            return uploads[-1]

        open_upload_stream = bucket.open_upload_stream
        monkeypatch.setattr(bucket, "open_upload_stream", recorded)
        piece = os.urandom(1024 * 1024)
        with pytest.raises(Boom):
            store.put(failing_after([piece] * 52), filename="a", content_type="x")
        [upload] = uploads
        chunks = store._client.get_default_database()["fs.chunks"]
        assert list(chunks.find({"files_id": upload._id}).limit(1)) == []

    def test_unreachable_server_is_unavailable(self) -> None:
        from video2mp3.errors import Unavailable

        store = GridFSBlobStore("mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=200")
        try:
            with pytest.raises(Unavailable):
                store.ping()
        finally:
            store.close()
