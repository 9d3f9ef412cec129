"""Another owner's cached MP3, copied for a new owner with nothing of the first in it.

Two jobs with one cache key have the same video bytes and the same options, so their MP3s differ
in one tag only: the title, when neither the options nor the video gave one, comes from the
uploaded file's name. A cross-owner cache hit therefore gets its own copy of the MP3 whose ID3
tag has that title taken from the new owner's file name (mutagen rewrites the tag the MP3 starts
with; the audio after it is streamed as it is); every other frame (artist, album, year, cover,
chapters) is the options' or the video's, the same for both owners. An MP3 without a tag is not
copied: the upload is converted as any other.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from mutagen.id3 import ID3, TIT2, Encoding, ID3NoHeaderError

from video2mp3.domain.jobs import Job, mp3_filename
from video2mp3.domain.options import title_from_filename
from video2mp3.errors import BlobNotFound
from video2mp3.ports.blobs import CHUNK_SIZE, BlobInfo, BlobReader, BlobStore, derived_id

FOOTER = 0x10  # the ID3v2 header flag for a footer of 10 bytes after the frames


def copy_for(blobs: BlobStore, source: Job, job: Job) -> BlobInfo | None:
    """Store ``source``'s MP3 again for ``job``, titled from ``job``'s file name where it was
    titled from ``source``'s; ``None`` when it cannot be (gone, or no tag to read)."""
    try:
        with blobs.open(source.mp3_fid or "") as reader:
            tag = _read_tag(reader)
            if tag is None:
                return None
            title = str(tag["TIT2"]) if "TIT2" in tag else None
            if not job.options.title and title == title_from_filename(source.filename):
                new = title_from_filename(job.filename)
                tag.setall("TIT2", [TIT2(encoding=Encoding.UTF8, text=[new])])
            head = io.BytesIO()
            tag.save(head, v2_version=4, padding=lambda _: 0)
            return blobs.put(
                _then(head.getvalue(), reader),
                filename=mp3_filename(job.filename),
                content_type="audio/mpeg",
                blob_id=derived_id("mp3-copy", job.id),
            )
    except BlobNotFound:  # deleted meanwhile: converted as any other upload
        return None


def _read_tag(reader: BlobReader) -> ID3 | None:
    """The ID3v2 tag ``reader`` starts with (``reader`` left just past it), or ``None``."""
    header = reader.read(10)
    if len(header) < 10 or header[:3] != b"ID3":
        return None
    size = sum((byte & 0x7F) << (7 * (3 - n)) for n, byte in enumerate(header[6:10]))
    size += 10 if header[5] & FOOTER else 0
    try:
        return ID3(io.BytesIO(header + reader.read(size)))
    except ID3NoHeaderError:
        return None


def _then(head: bytes, reader: BlobReader) -> Iterator[bytes]:
    yield head
    while chunk := reader.read(CHUNK_SIZE):
        yield chunk
