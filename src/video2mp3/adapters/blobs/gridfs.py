"""``GridFSBlobStore``: blobs in MongoDB GridFS, streamed in and out chunk by chunk.

GridFS writes the ``fs.files`` document only when an upload stream is closed, so a blob becomes
visible only once complete; an interrupted upload is aborted (its chunks deleted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import gridfs
import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import PyMongoError

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

    def put(self, chunks: Iterable[bytes], *, filename: str, content_type: str) -> BlobInfo:
        with _translated():
            upload = self._bucket.open_upload_stream(
                filename, metadata={"contentType": content_type}
            )
            try:
                for chunk in chunks:
                    upload.write(chunk)
                upload.close()
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

    def ping(self) -> None:
        with _translated():
            self._client.admin.command("ping")

    def close(self) -> None:
        self._client.close()

    @staticmethod
    def _abort(upload: gridfs.GridIn) -> None:
        # Best effort: the original error matters more than a failed clean-up.
        try:
            upload.abort()
        except PyMongoError as exc:
            log.warning("could not abort a partial GridFS upload: %s", exc)


def _object_id(blob_id: str) -> ObjectId:
    try:
        return ObjectId(blob_id)
    except (InvalidId, TypeError):
        raise BlobNotFound(f"no blob {blob_id!r}") from None
