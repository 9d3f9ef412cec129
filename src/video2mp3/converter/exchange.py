"""What a conversion exchanges with the rest of the system: blobs and progress events.

Every blob a converter writes has an id derived from its job (``derived_id``), so that a retry
finds what an earlier attempt stored instead of storing it twice: the MP3 of a job converted by
one converter, and for an input spread across converters (``fanout``) its audio copy, its tag
and its parts.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from video2mp3.domain.events import ConversionProgress, Event
from video2mp3.errors import BlobNotFound, Unavailable
from video2mp3.ports.blobs import CHUNK_SIZE, BlobInfo, BlobStore, derived_id
from video2mp3.ports.bus import Bus

log = logging.getLogger(__name__)


def mp3_blob_id(job_id: str) -> str:
    """The blob id of a job's MP3, the same on every attempt."""
    return derived_id("mp3", job_id)


def merged_blob_id(job_id: str, index: int) -> str:
    """The MP3 of a spread input as the worker of its segment ``index`` joined it."""
    return derived_id("mp3", job_id, str(index))


def audio_blob_id(job_id: str) -> str:
    """The audio stream of a spread input, copied out of the video."""
    return derived_id("audio", job_id)


def tag_blob_id(job_id: str) -> str:
    """The ID3 tag (cover, chapters) of a spread input's MP3, alone."""
    return derived_id("tag", job_id)


def part_blob_id(job_id: str, index: int) -> str:
    """The MP3 frames of segment ``index`` of a spread input."""
    return derived_id("segment", job_id, str(index))


def read_blob(blobs: BlobStore, blob_id: str, copy: Path) -> Path:
    """The blob as a file: where it lies when the store keeps files, else a copy at ``copy``.
    ``BlobNotFound`` if it is gone."""
    if (path := blobs.local_path(blob_id)) is not None:
        return path
    with blobs.open(blob_id) as blob, copy.open("wb") as out:
        shutil.copyfileobj(blob, out, CHUNK_SIZE)
    return copy


def store_file(
    blobs: BlobStore, path: Path, blob_id: str | None, filename: str, content_type: str
) -> BlobInfo:
    """Stream the file ``path`` into the blob ``blob_id`` (idempotent: ``BlobStore.put``), or a
    new blob."""
    with path.open("rb") as data:
        chunks = iter(lambda: data.read(CHUNK_SIZE), b"")
        return blobs.put(chunks, filename=filename, content_type=content_type, blob_id=blob_id)


def blob_exists(blobs: BlobStore, blob_id: str) -> bool:
    try:
        blobs.open(blob_id).close()
    except BlobNotFound:
        return False
    return True


def publish_progress(bus: Bus, event: Event, fraction: float) -> None:
    """Tell how far ``event``'s job is (0..1); a courtesy, so an outage does not stop the work."""
    progress = ConversionProgress(progress=round(fraction, 3))
    try:
        bus.publish(
            Event(event.job_id, progress, correlation_id=event.correlation_id), transient=True
        )
    except Unavailable as exc:
        log.warning("could not publish progress: %s", exc.message)
