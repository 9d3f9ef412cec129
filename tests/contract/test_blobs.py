"""One contract for every blob store: LocalBlobStore and GridFSBlobStore pass the same tests.

GridFS runs against nx-27017 here (small files: it answers a large download in one reply), and
against a real mongod whenever TEST_MONGODB_URL is set.
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from bson import ObjectId

from video2mp3.adapters.blobs.gridfs import GridFSBlobStore
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.domain.jobs import utcnow
from video2mp3.errors import BlobNotFound, BlobStalled
from video2mp3.ports.blobs import CHUNK_SIZE, BlobStore, derived_id

DATA = os.urandom(700_000)  # several GridFS chunks


def chunks(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class Boom(Exception):
    pass


def failing_after(data: bytes | list[bytes]) -> Iterator[bytes]:
    yield from [data] if isinstance(data, bytes) else data
    raise Boom


class GatedWriter:
    """A ``put`` in a thread whose pieces of ``DATA`` the test releases one at a time; then it
    ends, or raises ``Boom`` with ``fail``."""

    def __init__(self, store: BlobStore, *, fail: bool = False) -> None:
        self.id = derived_id("video", str(uuid.uuid4()))
        self.pieces = [DATA[i : i + CHUNK_SIZE] for i in range(0, len(DATA), CHUNK_SIZE)]
        self.released = [threading.Event() for _ in self.pieces]
        self.asked = [threading.Event() for _ in [*self.pieces, None]]  # for piece k: k-1 stored
        self.fail, self.error = fail, None
        self.thread = threading.Thread(target=self._put, args=(store,))
        self.thread.start()

    def _put(self, store: BlobStore) -> None:
        try:
            store.put(self._pieces(), filename="v.mkv", content_type="video/x", blob_id=self.id)
        except Boom as exc:
            self.error = exc

    def _pieces(self) -> Iterator[bytes]:
        for k, piece in enumerate(self.pieces):
            self.asked[k].set()
            assert self.released[k].wait(30)
            yield piece
        self.asked[-1].set()
        if self.fail:
            raise Boom

    def release(self, k: int) -> None:
        """Let piece ``k`` go, and wait until the store has taken it."""
        self.released[k].set()
        assert self.asked[k + 1].wait(30)

    def finish(self) -> None:
        for gate in self.released:
            gate.set()
        self.thread.join(30)


def take(following: Iterator[bytes], size: int) -> bytes:
    """The next ``size`` bytes a follower gives."""
    got = b""
    while len(got) < size:
        got += next(following)
    return got


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

    def test_a_blob_is_followed_while_it_is_written(self, store: BlobStore) -> None:
        writer = GatedWriter(store)
        try:
            writer.release(0)
            following = store.follow(writer.id, stall_seconds=30)
            # Each piece reaches the follower while the next one is still held back.
            for k, piece in enumerate(writer.pieces):
                assert take(following, len(piece)) == piece
                if k + 1 < len(writer.pieces):
                    writer.release(k + 1)
            assert list(following) == []  # ended: the blob is complete
        finally:
            writer.finish()
        with store.open(writer.id) as reader:
            assert reader.read() == DATA

    def test_a_complete_blob_is_followed_whole(self, store: BlobStore) -> None:
        blob_id = derived_id("video", str(uuid.uuid4()))
        store.put(chunks(DATA), filename="v", content_type="video/x", blob_id=blob_id)
        assert b"".join(store.follow(blob_id, stall_seconds=1)) == DATA

    def test_a_follower_learns_that_the_writer_aborted(self, store: BlobStore) -> None:
        writer = GatedWriter(store, fail=True)
        writer.release(0)
        following = store.follow(writer.id, stall_seconds=30)
        assert take(following, CHUNK_SIZE) == writer.pieces[0]
        writer.finish()
        assert isinstance(writer.error, Boom)
        with pytest.raises(BlobNotFound):
            list(following)

    def test_a_follower_gives_up_on_a_stalled_writer(self, store: BlobStore) -> None:
        writer = GatedWriter(store)
        try:
            writer.release(0)
            following = store.follow(writer.id, stall_seconds=0.3)
            assert take(following, CHUNK_SIZE) == writer.pieces[0]
            with pytest.raises(BlobStalled):
                list(following)
        finally:
            writer.finish()

    def test_a_blob_nobody_writes_cannot_be_followed(self, store: BlobStore) -> None:
        with pytest.raises(BlobNotFound):
            next(store.follow(derived_id("video", str(uuid.uuid4())), stall_seconds=30))

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

    def test_a_blob_is_followed_in_a_link_while_it_is_written(
        self, store: LocalBlobStore, tmp_path: Path
    ) -> None:
        writer = GatedWriter(store)
        link = tmp_path / "scratch-video"
        try:
            writer.release(0)
            sizes = store.follow_linked(writer.id, link, stall_seconds=30)
            assert sizes is not None
            size = 0
            for k, piece in enumerate(writer.pieces):
                size += len(piece)
                assert next(sizes) == size
                assert link.read_bytes() == DATA[:size]  # written once, seen under both names
                if k + 1 < len(writer.pieces):
                    writer.release(k + 1)
            assert list(sizes) == []  # ended: the blob is complete
        finally:
            writer.finish()
        assert link.stat().st_ino == (store.root / writer.id).stat().st_ino

    def test_a_linked_follower_learns_that_the_writer_aborted(
        self, store: LocalBlobStore, tmp_path: Path
    ) -> None:
        writer = GatedWriter(store, fail=True)
        writer.release(0)
        sizes = store.follow_linked(writer.id, tmp_path / "scratch-video", stall_seconds=30)
        assert sizes is not None
        assert next(sizes) == CHUNK_SIZE
        writer.finish()
        assert isinstance(writer.error, Boom)
        with pytest.raises(BlobNotFound):
            list(sizes)

    def test_a_complete_blob_is_linked_whole(self, store: LocalBlobStore, tmp_path: Path) -> None:
        blob_id = derived_id("video", str(uuid.uuid4()))
        store.put(chunks(DATA), filename="v", content_type="video/x", blob_id=blob_id)
        sizes = store.follow_linked(blob_id, tmp_path / "video", stall_seconds=1)
        assert sizes is not None
        assert list(sizes) == [len(DATA)]
        assert (tmp_path / "video").read_bytes() == DATA

    def test_a_blob_nobody_writes_cannot_be_linked(
        self, store: LocalBlobStore, tmp_path: Path
    ) -> None:
        with pytest.raises(BlobNotFound):
            store.follow_linked(derived_id("video", "none"), tmp_path / "v", stall_seconds=30)

    def test_a_blob_that_cannot_be_linked_there_is_left_to_follow(
        self, store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        blob_id = derived_id("video", str(uuid.uuid4()))
        store.put(chunks(DATA), filename="v", content_type="video/x", blob_id=blob_id)

        def across_devices(*_: object) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "link", across_devices)
        assert store.follow_linked(blob_id, tmp_path / "v", stall_seconds=1) is None
        assert not (tmp_path / "v").exists()

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

    def test_an_aborted_upload_leaves_no_chunk_behind(self, store: BlobStore) -> None:
        """Chunks reach the server as they fill, before the failure (a follower reads them):
        they must be deleted, not only left without a file. (Chunks are looked up by
        ``files_id``: nx-27017 cannot count fs.chunks otherwise.)"""
        assert isinstance(store, GridFSBlobStore)
        blob_id = derived_id("video", str(uuid.uuid4()))
        piece = os.urandom(1024 * 1024)
        with pytest.raises(Boom):
            store.put(failing_after([piece] * 4), filename="a", content_type="x", blob_id=blob_id)
        chunks = store._client.get_default_database()["fs.chunks"]
        assert list(chunks.find({"files_id": ObjectId(blob_id)}).limit(1)) == []

    def test_a_blob_in_the_database_is_never_linked(self, store: BlobStore, tmp_path: Path) -> None:
        blob_id = derived_id("video", str(uuid.uuid4()))
        store.put(chunks(DATA), filename="v", content_type="video/x", blob_id=blob_id)
        assert store.follow_linked(blob_id, tmp_path / "v", stall_seconds=1) is None

    def test_unreachable_server_is_unavailable(self) -> None:
        from video2mp3.errors import Unavailable

        store = GridFSBlobStore("mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=200")
        try:
            with pytest.raises(Unavailable):
                store.ping()
        finally:
            store.close()
