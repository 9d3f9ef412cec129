"""``GridFSBlobStore``: blobs in MongoDB GridFS, streamed in and out chunk by chunk.

Blobs are written in GridFS's layout (``fs.chunks`` by ``n``, then the ``fs.files`` document),
each chunk stored as soon as it is full: pymongo's ``GridIn`` holds up to 48 MB before writing
any, which would keep a follower (``follow``) that far behind a slow upload. The ``fs.files``
document is written last, so a blob becomes visible only once complete; an interrupted upload is
aborted (its chunks deleted), which is how a follower tells an abort from a slow writer.

A ``put`` with a ``blob_id`` returns the blob if it is complete, else first clears what a writer
killed mid-way left under that id. (Two live writers of one id at the very same moment are not
arbitrated: the id is derived from a job, and one job is converted by one converter at a time.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gridfs
import pymongo
from bson import Int64, ObjectId
from bson.errors import InvalidId
from pymongo.errors import DuplicateKeyError, PyMongoError

from video2mp3.adapters.blobs import Reader
from video2mp3.errors import BlobNotFound, BlobStalled, Unavailable
from video2mp3.ports.blobs import CHUNK_SIZE, BlobInfo

log = logging.getLogger(__name__)
FOLLOW_POLL = 0.05  # seconds between looks at a followed blob that has no new chunk
FOLLOW_BATCH = 16  # chunks per read: 4 MB (some wire-compatible servers answer in one reply)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except gridfs.errors.NoFile as exc:
        raise BlobNotFound(str(exc)) from None
    except PyMongoError as exc:
        raise Unavailable(f"blob store: {exc}") from exc


class GridFSBlobStore:
    def __init__(self, url: str, database: str = "video2mp3") -> None:
        self._client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000
        )
        db = self._client.get_default_database(database)
        self._bucket = gridfs.GridFSBucket(db, chunk_size_bytes=CHUNK_SIZE)
        self._files, self._chunks = db["fs.files"], db["fs.chunks"]
        self._indexed = False

    def put(
        self,
        chunks: Iterable[bytes],
        *,
        filename: str,
        content_type: str,
        blob_id: str | None = None,
    ) -> BlobInfo:
        oid = ObjectId() if blob_id is None else _object_id(blob_id)
        with _translated():
            if blob_id is not None:
                if (existing := self._find(oid)) is not None:
                    return existing
                if self._files.find_one({"_id": oid}, {"_id": 1}) is not None:
                    self._files.delete_one({"_id": oid})  # not complete: see _find
                self._chunks.delete_many({"files_id": oid})
            self._ensure_indexes()
            try:
                size = self._store_chunks(oid, chunks)
                self._files.insert_one(
                    {
                        "_id": oid,
                        "length": Int64(size),
                        "chunkSize": CHUNK_SIZE,
                        "uploadDate": datetime.now(UTC),
                        "filename": filename,
                        "metadata": {"contentType": content_type},
                    }
                )
            except DuplicateKeyError:
                if blob_id is not None and (existing := self._find(oid)) is not None:
                    return existing  # another writer of this id finished first
                self._abort(oid)
                raise
            except BaseException:
                self._abort(oid)
                raise
        return BlobInfo(str(oid), size, filename, content_type)

    def _store_chunks(self, oid: ObjectId, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` as GridFS chunks, each once full; return the bytes stored."""
        pending, n, size = bytearray(), 0, 0
        for chunk in chunks:
            pending += chunk
            size += len(chunk)
            while len(pending) >= CHUNK_SIZE:
                self._chunks.insert_one(
                    {"files_id": oid, "n": n, "data": bytes(pending[:CHUNK_SIZE])}
                )
                del pending[:CHUNK_SIZE]
                n += 1
        if pending:
            self._chunks.insert_one({"files_id": oid, "n": n, "data": bytes(pending)})
        return size

    def _ensure_indexes(self) -> None:
        """GridFS's own indexes (as ``GridIn`` makes them), once per store."""
        if not self._indexed:
            self._chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
            self._files.create_index([("filename", 1), ("uploadDate", 1)])
            self._indexed = True

    def follow(self, blob_id: str, *, stall_seconds: float) -> Iterator[bytes]:
        oid = _object_id(blob_id)
        given, n, length = 0, 0, None  # length: known once the files document is there
        quiet_since = time.monotonic()
        with _translated():
            while True:
                first = n
                found = self._chunks.find({"files_id": oid, "n": {"$gte": n}}, {"n": 1, "data": 1})
                for chunk in found.sort("n", 1).limit(FOLLOW_BATCH):
                    if chunk["n"] != n:
                        break  # a gap: that chunk is not stored yet
                    yield bytes(chunk["data"])
                    given, n, quiet_since = given + len(chunk["data"]), n + 1, time.monotonic()
                if n > first:
                    continue  # there may be more at once
                if length is not None:
                    if given != length:
                        raise BlobNotFound(f"blob {blob_id} lost chunks (deleted?)")
                    return
                if (info := self._find(oid)) is not None:
                    length = info.size  # one more look: its last chunks came before it
                elif self._chunks.find_one({"files_id": oid}, {"_id": 1}) is None:
                    raise BlobNotFound(f"no blob {blob_id!r}, complete or being written")
                elif time.monotonic() - quiet_since > stall_seconds:
                    raise BlobStalled(f"no byte of blob {blob_id} for {stall_seconds:g} s")
                else:
                    time.sleep(FOLLOW_POLL)

    def open(self, blob_id: str) -> Reader:
        oid = _object_id(blob_id)
        with _translated():
            out = self._bucket.open_download_stream(oid)
        meta = out.metadata or {}
        info = BlobInfo(blob_id, out.length, out.filename or "", meta.get("contentType", ""))
        return Reader(out, info)

    def follow_linked(self, blob_id: str, link: Path, *, stall_seconds: float) -> None:
        return None  # chunks in a database: nothing to link

    def local_path(self, blob_id: str) -> None:
        return None  # chunks in a database, possibly on another machine

    def delete(self, blob_id: str) -> None:
        try:
            oid = _object_id(blob_id)
        except BlobNotFound:
            return
        with _translated():
            # Look first: deleting a missing file is an error for GridFS, and we are idempotent.
            if next(iter(self._bucket.find({"_id": oid}).limit(1)), None) is not None:
                self._bucket.delete(oid)

    def stored_before(self, moment: datetime) -> Iterator[str]:
        # Filtered here, not in the query: some wire-compatible servers return uploadDate as text.
        with _translated():
            for doc in self._files.find({}, {"uploadDate": 1}):
                if _naive_utc(doc.get("uploadDate")) < moment:
                    yield str(doc["_id"])

    def ping(self) -> None:
        with _translated():
            self._client.admin.command("ping")

    def _find(self, oid: ObjectId) -> BlobInfo | None:
        """The complete blob ``oid``. Every upload of ours closes with its content type in the
        metadata; a files document without it is not one (nx-27017, a wire-compatible server,
        makes such a document for the chunks a killed writer left)."""
        found = next(iter(self._bucket.find({"_id": oid}).limit(1)), None)
        if found is None or "contentType" not in (found.metadata or {}):
            return None
        meta = found.metadata or {}
        return BlobInfo(str(oid), found.length, found.filename or "", meta.get("contentType", ""))

    def close(self) -> None:
        self._client.close()

    def _abort(self, oid: ObjectId) -> None:
        # Best effort: the original error matters more than a failed clean-up.
        try:
            self._chunks.delete_many({"files_id": oid})
            self._files.delete_one({"_id": oid})
        except PyMongoError as exc:
            log.warning("could not abort a partial GridFS upload: %s", exc)


def _naive_utc(value: object) -> datetime:
    """A stored upload date as naive UTC; the far future (never collected) when unreadable."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return datetime.max
    if not isinstance(value, datetime):
        return datetime.max
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _object_id(blob_id: str) -> ObjectId:
    try:
        return ObjectId(blob_id)
    except (InvalidId, TypeError):
        raise BlobNotFound(f"no blob {blob_id!r}") from None
