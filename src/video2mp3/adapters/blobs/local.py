"""``LocalBlobStore``: blobs as files in one directory, for ``video2mp3 dev`` and tests.

A blob is written under ``.partial/`` and hard-linked into place when complete, so a reader never
sees half a file, and two writers of one id (``put(..., blob_id=...)``) cannot both win: the link
fails for the second. Its metadata follows the data; a blob whose writer died between the two is
completed by the next ``put`` of that id. Single machine only: services on other hosts cannot
see the directory.

A blob being written can be followed (``follow``): its partial file is named after its id and
every chunk is flushed to it as it comes. Once linked into place, the follower's open file is the
blob itself (one inode, two names); a partial file gone with no blob in place is an abort.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from video2mp3.adapters.blobs import Reader
from video2mp3.errors import BlobNotFound, BlobStalled, Unavailable
from video2mp3.ports.blobs import CHUNK_SIZE, BlobInfo

log = logging.getLogger(__name__)
_ID = re.compile(r"[0-9a-f]{24}|[0-9a-f]{32}")  # derived ids, random ids
FOLLOW_POLL = 0.02  # seconds between looks at a followed blob that has no new byte


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
            fd, tmp = tempfile.mkstemp(dir=self._partial, prefix=f"{blob_id}.")
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
                        out.flush()  # for a follower: the bytes given so far are in the file
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

    def follow(self, blob_id: str, *, stall_seconds: float) -> Iterator[bytes]:
        with self._open_growing(blob_id) as stream:
            for size in self._sizes(blob_id, stream.fileno(), stall_seconds):
                while (at := stream.tell()) < size:
                    if not (chunk := stream.read(min(CHUNK_SIZE, size - at))):
                        raise BlobNotFound(f"blob {blob_id} was cut short while it was read")
                    yield chunk

    def follow_linked(
        self, blob_id: str, link: Path, *, stall_seconds: float
    ) -> Iterator[int] | None:
        for path in self._growing(blob_id):
            try:
                os.link(path, link)
            except FileNotFoundError:
                continue  # its writer has just linked it into place, or given up
            except OSError:  # another filesystem, or linking forbidden (protected_hardlinks)
                return None
            return self._linked_sizes(blob_id, link, stall_seconds)
        raise BlobNotFound(f"no blob {blob_id!r}, complete or being written")

    def _linked_sizes(self, blob_id: str, link: Path, stall_seconds: float) -> Iterator[int]:
        with link.open("rb") as stream:
            yield from self._sizes(blob_id, stream.fileno(), stall_seconds)

    def _sizes(self, blob_id: str, fd: int, stall_seconds: float) -> Iterator[int]:
        """The sizes the blob's file open at ``fd`` (complete or being written) reaches as its
        writer writes, up to its whole size."""
        size, quiet_since = 0, time.monotonic()
        while True:
            complete = self._path(blob_id).exists()  # looked at first: linked once all is written
            if (now := os.fstat(fd).st_size) > size:
                size, quiet_since = now, time.monotonic()
                yield size
            elif complete:
                return
            elif not self._writing(blob_id) and not self._path(blob_id).exists():
                raise BlobNotFound(f"blob {blob_id} was never completed: its writer gave up")
            elif time.monotonic() - quiet_since > stall_seconds:
                raise BlobStalled(f"no byte of blob {blob_id} for {stall_seconds:g} s")
            else:
                time.sleep(FOLLOW_POLL)

    def _open_growing(self, blob_id: str) -> IO[bytes]:
        """The blob's file, complete or still being written."""
        for path in self._growing(blob_id):
            with contextlib.suppress(FileNotFoundError):
                return path.open("rb")
        raise BlobNotFound(f"no blob {blob_id!r}, complete or being written")

    def _growing(self, blob_id: str) -> list[Path]:
        """Where the blob's file may be: being written, or complete. The complete one last: its
        writer may link it into place and remove its partial file in between."""
        if not _ID.fullmatch(blob_id):
            return []
        return [*self._partial.glob(f"{blob_id}.*"), self._path(blob_id)]

    def _writing(self, blob_id: str) -> bool:
        return any(self._partial.glob(f"{blob_id}.*"))

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
