"""``LocalBlobStore``: blobs as files in one directory, for ``video2mp3 dev`` and tests.

A blob is written under ``.partial/`` and hard-linked into place when complete, so a reader never
sees half a file, and two writers of one id (``put(..., blob_id=...)``) cannot both win: the link
fails for the second. Its metadata follows the data; a blob whose writer died between the two is
completed by the next ``put`` of that id. Single machine only: services on other hosts cannot
see the directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from video2mp3.adapters.blobs import Reader
from video2mp3.errors import BlobNotFound, Unavailable
from video2mp3.ports.blobs import BlobInfo

log = logging.getLogger(__name__)
_ID = re.compile(r"[0-9a-f]{24}|[0-9a-f]{32}")  # derived ids, random ids


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._partial = root / ".partial"
        self._partial.mkdir(parents=True, exist_ok=True)
        log.warning("blobs are stored in a local directory (%s): single machine only", root)

    def put(
        self,
        chunks: Iterable[bytes],
        *,
        filename: str,
        content_type: str,
        blob_id: str | None = None,
    ) -> BlobInfo:
        if blob_id is not None and not _ID.fullmatch(blob_id):
            raise ValueError(f"not a blob id: {blob_id!r}")
        blob_id = blob_id or uuid.uuid4().hex
        if not self._path(blob_id).exists():
            fd, tmp = tempfile.mkstemp(dir=self._partial)
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
                # Another writer of this id finishing first keeps theirs.
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, self._path(blob_id))
            finally:
                Path(tmp).unlink(missing_ok=True)
        return self._described(blob_id, filename, content_type)

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

    def stored_before(self, moment: datetime) -> Iterator[str]:
        cutoff = (moment - datetime(1970, 1, 1)).total_seconds()
        for entry in os.scandir(self.root):
            if _ID.fullmatch(entry.name) and entry.stat().st_mtime < cutoff:
                yield entry.name

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise Unavailable(f"blob directory {self.root} is not writable")

    def _described(self, blob_id: str, filename: str, content_type: str) -> BlobInfo:
        """The stored blob's info, writing its metadata if its writer could not."""
        try:
            return BlobInfo(**json.loads(self._meta(blob_id).read_text()))
        except FileNotFoundError:
            size = self._path(blob_id).stat().st_size
            info = BlobInfo(id=blob_id, size=size, filename=filename, content_type=content_type)
            fd, tmp = tempfile.mkstemp(dir=self._partial)
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(vars(info)))
            os.replace(tmp, self._meta(blob_id))
            return info

    def _path(self, blob_id: str) -> Path:
        return self.root / blob_id

    def _meta(self, blob_id: str) -> Path:
        return self.root / f"{blob_id}.json"
