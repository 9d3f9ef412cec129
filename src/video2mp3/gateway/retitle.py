"""Another owner's cached MP3, copied for a new owner with nothing of the first in it.

Two jobs with one cache key have the same video bytes and the same options, so their MP3s differ
in one tag only: the title, when neither the options nor the video gave one, comes from the
uploaded file's name. A cross-owner cache hit therefore gets its own copy of the MP3 whose ID3v2.4
tag (as ``converter/tags.py`` writes it, with no unsynchronisation, extended header or footer)
has that title taken from the new owner's file name; every other frame (artist, album, year,
cover, chapters) is the options' or the video's, the same for both owners. A tag written
otherwise is not copied: the upload is converted as any other.
"""

from __future__ import annotations

from collections.abc import Iterator

from video2mp3.domain.jobs import Job, mp3_filename
from video2mp3.domain.options import title_from_filename
from video2mp3.errors import BlobNotFound
from video2mp3.ports.blobs import CHUNK_SIZE, BlobInfo, BlobReader, BlobStore, derived_id

Frame = tuple[bytes, bytes, bytes]  # id, flags, data
TEXT_ENCODINGS = {0: "latin-1", 3: "utf-8"}


def copy_for(blobs: BlobStore, source: Job, job: Job) -> BlobInfo | None:
    """Store ``source``'s MP3 again for ``job``, titled from ``job``'s file name where it was
    titled from ``source``'s; ``None`` when it cannot be (gone, or a tag read otherwise)."""
    try:
        with blobs.open(source.mp3_fid or "") as reader:
            tag = _read_tag(reader)
            if tag is None:
                return None
            title = _title(tag)
            if not job.options.title and title == title_from_filename(source.filename):
                title = title_from_filename(job.filename)
            head = _write_tag([(b"TIT2", b"\0\0", b"\3" + title.encode())] if title else [], tag)
            return blobs.put(
                _then(head, reader),
                filename=mp3_filename(job.filename),
                content_type="audio/mpeg",
                blob_id=derived_id("mp3-copy", job.id),
            )
    except BlobNotFound:  # deleted meanwhile: converted as any other upload
        return None


def _read_tag(reader: BlobReader) -> list[Frame] | None:
    """The frames of the ID3v2.4 tag ``reader`` starts with (left just past it)."""
    header = reader.read(10)
    if len(header) < 10 or header[:4] != b"ID3\4" or header[5] != 0:
        return None
    body = reader.read(_unsyncsafe(header[6:10]))
    frames, at = [], 0
    while at + 10 <= len(body) and body[at : at + 4] != b"\0\0\0\0":
        size = _unsyncsafe(body[at + 4 : at + 8])
        frames.append((body[at : at + 4], body[at + 8 : at + 10], body[at + 10 : at + 10 + size]))
        at += 10 + size
    return frames


def _title(frames: list[Frame]) -> str | None:
    for frame_id, _flags, data in frames:
        if frame_id == b"TIT2" and data[:1] and data[0] in TEXT_ENCODINGS:
            return data[1:].decode(TEXT_ENCODINGS[data[0]], "replace").rstrip("\0")
    return None


def _write_tag(first: list[Frame], frames: list[Frame]) -> bytes:
    """An ID3v2.4 tag of ``first`` then ``frames`` but their titles."""
    kept = first + [frame for frame in frames if frame[0] != b"TIT2"]
    body = b"".join(fid + _syncsafe(len(data)) + flags + data for fid, flags, data in kept)
    return b"ID3\4\0\0" + _syncsafe(len(body)) + body


def _then(head: bytes, reader: BlobReader) -> Iterator[bytes]:
    yield head
    while chunk := reader.read(CHUNK_SIZE):
        yield chunk


def _unsyncsafe(data: bytes) -> int:
    return sum((byte & 0x7F) << (7 * (3 - n)) for n, byte in enumerate(data))


def _syncsafe(value: int) -> bytes:
    return bytes((value >> (7 * (3 - n))) & 0x7F for n in range(4))
