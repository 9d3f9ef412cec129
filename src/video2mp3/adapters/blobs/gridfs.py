"""``GridFSBlobStore``: blobs in MongoDB GridFS, streamed in and out chunk by chunk.

GridFS writes the ``fs.files`` document only when an upload stream is closed, so a blob becomes
visible only once complete; an interrupted upload is aborted (its chunks deleted). A ``put`` with
a ``blob_id`` returns the blob if it is complete, else first clears what a writer killed mid-way
left under that id. (Two live writers of one id at the very same moment are not
arbitrated: the id is derived from a job, and one job is converted by one converter at a time.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import gridfs
import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import DuplicateKeyError, PyMongoError

from video2mp3.adapters.blobs import Reader
from video2mp3.errors import BlobNotFound, Unavailable
from video2mp3.ports.blobs import CHUNK_SIZE, BlobInfo

log = logging.getLogger(__name__)


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

    def put(
        self,
        chunks: Iterable[bytes],
        *,
        filename: str,
        content_type: str,
        blob_id: str | None = None,
    ) -> BlobInfo:
        metadata = {"contentType": content_type}
        with _translated():
            if blob_id is None:
                upload = self._bucket.open_upload_stream(filename, metadata=metadata)
            else:
                oid = _object_id(blob_id)
                if (existing := self._find(oid)) is not None:
                    return existing
                if self._files.find_one({"_id": oid}, {"_id": 1}) is not None:
                    self._files.delete_one({"_id": oid})  # not complete: see _find
                self._chunks.delete_many({"files_id": oid})
                upload = self._bucket.open_upload_stream_with_id(oid, filename, metadata=metadata)
            try:
                for chunk in chunks:
                    upload.write(chunk)
                upload.close()
            except DuplicateKeyError:
                if blob_id is not None and (existing := self._find(upload._id)) is not None:
                    return existing  # another writer of this id finished first
                self._abort(upload)
                raise
            except BaseException:
                self._abort(upload)
                raise
        return BlobInfo(str(upload._id), upload.length, filename, content_type)

    def open(self, blob_id: str) -> Reader:
        oid = _object_id(blob_id)
        with _translated():
            out = self._bucket.open_download_stream(oid)
        meta = out.metadata or {}
        info = BlobInfo(blob_id, out.length, out.filename or "", meta.get("contentType", ""))
        return Reader(out, info)

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

    @staticmethod
    def _abort(upload: gridfs.GridIn) -> None:
        # Best effort: the original error matters more than a failed clean-up.
        try:
            upload.abort()
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
