"""Streaming multipart parsing: the uploaded file goes to the blob store chunk by chunk.

Flask's ``request.files`` would spool the whole video to memory or a temporary file first; this
reads the request body in ``READ_SIZE`` pieces and hands the file part's bytes straight to
``BlobStore.put``, counting them against the upload limit as they pass.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from video2mp3.errors import InvalidRequest, TooLarge
from video2mp3.ports.blobs import BlobInfo, BlobStore

READ_SIZE = 256 * 1024
MAX_FIELD_BYTES = 4096
# What the decoder may buffer while it looks for the next boundary or the end of part headers.
# File data streams through; only a malformed body would hit this.
MAX_BUFFER = 1024 * 1024
MAX_PARTS = 16


@dataclass
class Upload:
    """What a multipart body held: the stored file (if any) and the small form fields."""

    blob: BlobInfo | None = None
    fields: dict[str, str] = field(default_factory=dict)


def clean_filename(name: str | None) -> str:
    """A display-safe file name: the last path component, no control characters, bounded."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:200] or "upload"


def store_upload(stream: IO[bytes], boundary: str, blobs: BlobStore, max_bytes: int) -> Upload:
    """Parse a multipart body from ``stream``, storing its single file part in ``blobs``.

    Raises ``TooLarge`` past ``max_bytes`` of file data and ``InvalidRequest`` for a malformed
    body or more than one file; nothing stays stored when it raises.
    """
    decoder = MultipartDecoder(boundary.encode(), MAX_BUFFER, max_parts=MAX_PARTS)
    events = _events(decoder, stream)
    upload = Upload()
    try:
        for event in events:
            if isinstance(event, Field):
                value = b"".join(_limited(_part_data(events), MAX_FIELD_BYTES, event.name))
                upload.fields[event.name] = value.decode(errors="replace")
            elif isinstance(event, File):
                if upload.blob is not None:
                    raise InvalidRequest("send exactly one file per upload")
                upload.blob = blobs.put(
                    _limited(_part_data(events), max_bytes, "the upload"),
                    filename=clean_filename(event.filename),
                    content_type=event.headers.get("Content-Type", "application/octet-stream"),
                )
    except BaseException:
        if upload.blob is not None:
            blobs.delete(upload.blob.id)
        raise
    return upload


def _events(decoder: MultipartDecoder, stream: IO[bytes]) -> Iterator[object]:
    ended = False
    while True:
        try:
            event = decoder.next_event()
            if isinstance(event, NeedData):
                if ended:
                    raise InvalidRequest("the multipart body ends too early")
                chunk = stream.read(READ_SIZE)
                ended = not chunk
                decoder.receive_data(chunk or None)
                continue
        except ValueError as exc:
            raise InvalidRequest(f"malformed multipart body: {exc}") from None
        except RequestEntityTooLarge:
            raise InvalidRequest(
                f"malformed multipart body: no boundary within {MAX_BUFFER} bytes,"
                f" or more than {MAX_PARTS} parts"
            ) from None
        if isinstance(event, Epilogue):
            return
        yield event


def _part_data(events: Iterator[object]) -> Iterator[bytes]:
    for event in events:
        if not isinstance(event, Data):
            raise InvalidRequest("malformed multipart body")
        if event.data:
            yield event.data
        if not event.more_data:
            return


def _limited(chunks: Iterator[bytes], max_bytes: int, what: str) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise TooLarge(f"{what} exceeds the limit of {max_bytes} bytes")
        yield chunk
