"""``LocalBlobStore``: blobs as files in one directory, for ``video2mp3 dev`` and tests.

A blob is written under ``.partial/`` and renamed into place when complete, so a reader never sees
half a file. Single machine only: services on other hosts cannot see the directory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

from video2mp3.adapters.blobs import Reader
from video2mp3.errors import BlobNotFound, Unavailable
from video2mp3.ports.blobs import BlobInfo

log = logging.getLogger(__name__)
_ID = re.compile(r"[0-9a-f]{32}")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._partial = root / ".partial"
        self._partial.mkdir(parents=True, exist_ok=True)
        log.warning("blobs are stored in a local directory (%s): single machine only", root)

    def put(self, chunks: Iterable[bytes], *, filename: str, content_type: str) -> BlobInfo:
        blob_id = uuid.uuid4().hex
        fd, tmp = tempfile.mkstemp(dir=self._partial)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                size = out.tell()
            info = BlobInfo(id=blob_id, size=size, filename=filename, content_type=content_type)
            self._meta(blob_id).write_text(json.dumps(vars(info)))
            os.replace(tmp, self._path(blob_id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            self._meta(blob_id).unlink(missing_ok=True)
            raise
        return info

    def open(self, blob_id: str) -> Reader:
        if not _ID.fullmatch(blob_id):
            raise BlobNotFound(f"no blob {blob_id!r}")
        try:  # metadata first: a blob being deleted loses its data file first
            info = BlobInfo(**json.loads(self._meta(blob_id).read_text()))
            stream = self._path(blob_id).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {blob_id!r}") from None
        return Reader(stream, info)

    def local_path(self, blob_id: str) -> Path:
        path = self._path(blob_id)
        if not _ID.fullmatch(blob_id) or not path.is_file():
            raise BlobNotFound(f"no blob {blob_id!r}")
        return path

    def delete(self, blob_id: str) -> None:
        if _ID.fullmatch(blob_id):
            self._path(blob_id).unlink(missing_ok=True)
            self._meta(blob_id).unlink(missing_ok=True)

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise Unavailable(f"blob directory {self.root} is not writable")

    def _path(self, blob_id: str) -> Path:
        return self.root / blob_id

    def _meta(self, blob_id: str) -> Path:
        return self.root / f"{blob_id}.json"
