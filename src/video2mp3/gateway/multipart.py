"""Streaming ``multipart/form-data``: small form fields first, then one file, read front to back.

Flask's ``request.files`` would spool the whole video to memory or a temporary file first; this
reads the request body in ``READ_SIZE`` pieces with werkzeug's sans-IO decoder and yields the
file part's bytes as they arrive, so the gateway's use case can stream them into the blob store.
Options are form fields sent before the file (browsers and ``curl -F`` keep the given order).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import IO

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from video2mp3.errors import InvalidRequest, TooLarge
from video2mp3.gateway.service import limited

READ_SIZE = 256 * 1024
MAX_FIELD_BYTES = 4096
# What the decoder may buffer while it looks for the next boundary or the end of part headers.
# File data streams through; only a malformed body would hit this.
MAX_BUFFER = 1024 * 1024
MAX_PARTS = 32
FILE_FIELD = "file"


class MultipartForm:
    """One upload's body: ``read_fields()`` up to the file part, then ``file_chunks()``."""

    def __init__(self, stream: IO[bytes], boundary: str) -> None:
        self._events = _events(
            MultipartDecoder(boundary.encode(), MAX_BUFFER, max_parts=MAX_PARTS), stream
        )
        self.filename: str | None = None
        self.content_type = "application/octet-stream"

    def read_fields(self) -> dict[str, str]:
        """The form fields before the file part; ``filename`` is then the file's (or ``None``)."""
        fields: dict[str, str] = {}
        for event in self._events:
            if isinstance(event, File):
                self.filename = event.filename or ""
                self.content_type = event.headers.get("Content-Type", self.content_type)
                return fields
            if isinstance(event, Field):
                message = f"{event.name} exceeds the limit of {MAX_FIELD_BYTES} bytes"
                too_long = functools.partial(TooLarge, message)
                value = b"".join(limited(_part_data(self._events), MAX_FIELD_BYTES, too_long))
                fields[event.name] = value.decode(errors="replace")
        return fields

    def file_chunks(self) -> Iterator[bytes]:
        """The file's bytes as they arrive; then the rest of the body is checked, so a body that
        goes wrong after the file raises before the last chunk has been taken."""
        yield from _part_data(self._events)
        for event in self._events:
            if isinstance(event, File):
                raise InvalidRequest("send exactly one file per upload")
            if isinstance(event, Field):
                raise InvalidRequest(
                    f"send the form field '{event.name}' before the file, not after it"
                )


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
