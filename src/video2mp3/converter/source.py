"""The video a conversion reads, as a local file: whole from the start (a stored blob), or growing
while its upload arrives (``Arriving``).

A video queued during its upload is followed in the blob store into the job's scratch directory:
hard-linked there when the store keeps it as a file on this filesystem (``follow_linked``: the
bytes are written once, by the gateway), else copied as its bytes come (``follow``). ffmpeg
reads that file through a pipe as it grows (``feed``): containers read front to back need no
seek. What does seek (the cover, a trim's start, loudness's two passes) waits until the file is
whole. The probe reads the first ``HEAD_BYTES`` as a file of their own, a fixed snapshot, and the
whole file at the end.

A failed or stalled upload sets ``whole`` all the same, so nothing waits for it forever, and
``check`` raises from then on: the worker stores nothing made from half a file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from video2mp3.converter.ffmpeg import Feed
from video2mp3.errors import BlobNotFound, BlobStalled, MediaError, Unavailable, Video2mp3Error
from video2mp3.ports.blobs import BlobStore

log = logging.getLogger(__name__)

HEAD_BYTES = 2 * 1024**2  # enough for every header but an MP4's long index; else, the whole
STALL_SECONDS = 60.0  # an upload that sends nothing for this long is given up


class Source:
    """A video file that is whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.whole = threading.Event()
        self.arrived()

    def arrived(self) -> None:
        """The file is whole now (or will never be: ``check`` then raises)."""
        self.whole_at = time.monotonic()
        self.whole.set()

    def feed(self) -> Feed | None:
        """The standard input of an ffmpeg that reads the file while it grows; ``None`` once it
        is whole (ffmpeg reads it where it lies)."""
        return None if self.whole.is_set() else Feed(self.path, 0, None, self.whole)

    def head(self, size: int) -> Path | None:
        """The first ``size`` bytes as a file of their own, once they are there while the rest is
        still arriving; ``None`` when the whole file is there by then."""
        return None

    def check(self) -> None:
        """Raise once the file is known never to be whole (its upload failed)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Arriving(Source):
    """A video still being uploaded, at ``path`` as it arrives."""

    def __init__(self, blobs: BlobStore, blob_id: str, path: Path) -> None:
        self.path = path
        self.whole = threading.Event()
        self.whole_at = 0.0  # set by ``arrived``
        self._size = 0
        self._grew = threading.Condition()
        self._error: Video2mp3Error | None = None
        self._stop = threading.Event()
        threading.Thread(
            target=self._follow, args=(blobs, blob_id), name="upload", daemon=True
        ).start()

    def head(self, size: int) -> Path | None:
        with self._grew:
            self._grew.wait_for(lambda: self._size >= size or self.whole.is_set())
        if self.whole.is_set():
            return None
        head = self.path.with_name("head")
        with self.path.open("rb") as growing, head.open("wb") as out:
            out.write(growing.read(size))
        return head

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # the follower ends at its next chunk (or at the stall limit)

    def _follow(self, blobs: BlobStore, blob_id: str) -> None:
        try:
            sizes = blobs.follow_linked(blob_id, self.path, stall_seconds=STALL_SECONDS)
            for size in self._copied(blobs, blob_id) if sizes is None else sizes:
                if self._stop.is_set():
                    return
                with self._grew:
                    self._size = size
                    self._grew.notify_all()
        except BlobNotFound:
            self._error = MediaError(
                "the upload did not complete; nothing was converted", code="upload_failed"
            )
        except BlobStalled as exc:
            self._error = MediaError(f"the upload stopped: {exc.message}", code="upload_stalled")
        except Video2mp3Error as exc:  # the store out of reach: the job is tried again
            self._error = exc
        except Exception:
            log.exception("could not follow an upload")
            self._error = Unavailable("could not follow the upload")
        finally:
            with self._grew:
                self.arrived()
                self._grew.notify_all()

    def _copied(self, blobs: BlobStore, blob_id: str) -> Iterator[int]:
        """The sizes ``path`` reaches as the followed bytes are copied to it."""
        size = 0
        with self.path.open("xb") as out:  # never over a link to the stored blob
            for chunk in blobs.follow(blob_id, stall_seconds=STALL_SECONDS):
                out.write(chunk)
                out.flush()  # ffmpeg's feed reads what the file holds
                size += len(chunk)
                yield size
