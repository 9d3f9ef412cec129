"""Streaming ``multipart/form-data``: small form fields first, then one file, read front to back.

Flask's ``request.files`` would spool the whole video to memory or a temporary file first; this
reads the request body in ``READ_SIZE`` pieces with the ``multipart`` package's push parser and
yields the file part's bytes as they arrive, so the gateway's use case can stream them into the
blob store. Options are form fields sent before the file (browsers and ``curl -F`` keep the given
order). The parser finds boundaries with ``bytes.find``: a 570 MB file part took it 0.16 s of
CPU, and werkzeug's sans-IO decoder, used before, 1.9 s: most of what an upload cost the gateway.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import IO, TypeAlias

from multipart import MultipartError, MultipartSegment, PushMultipartParser

from video2mp3.errors import InvalidRequest, TooLarge
from video2mp3.gateway.metering import limited

READ_SIZE = 1024 * 1024
MAX_FIELD_BYTES = 4096
# Bytes a body may hold before its first part: a body without boundaries is refused after this,
# not read to its end. Browsers and HTTP clients send none.
MAX_PREAMBLE = 1024 * 1024
MAX_PARTS = 32
FILE_FIELD = "file"

Event: TypeAlias = MultipartSegment | bytes | None  # a part's headers, a piece of its body, its end


class MultipartForm:
    """One upload's body: ``read_fields()`` up to the file part, then ``file_chunks()``."""

    def __init__(self, stream: IO[bytes], boundary: str) -> None:
        self._events = _events(stream, boundary)
        self.filename: str | None = None
        self.content_type = "application/octet-stream"

    def read_fields(self) -> dict[str, str]:
        """The form fields before the file part; ``filename`` is then the file's (or ``None``)."""
        fields: dict[str, str] = {}
        for event in self._events:
            if not isinstance(event, MultipartSegment):
                raise InvalidRequest("malformed multipart body")
            if event.filename is not None:
                self.filename = event.filename
                self.content_type = event.content_type or self.content_type
                return fields
            message = f"{event.name} exceeds the limit of {MAX_FIELD_BYTES} bytes"
            too_long = functools.partial(TooLarge, message)
            value = b"".join(limited(_part_data(self._events), MAX_FIELD_BYTES, too_long))
            fields[event.name or ""] = value.decode(errors="replace")
        return fields

    def file_chunks(self) -> Iterator[bytes]:
        """The file's bytes as they arrive; then the rest of the body is checked, so a body that
        goes wrong after the file raises before the last chunk has been taken."""
        yield from _part_data(self._events)
        for event in self._events:
            if isinstance(event, MultipartSegment) and event.filename is not None:
                raise InvalidRequest("send exactly one file per upload")
            if isinstance(event, MultipartSegment):
                raise InvalidRequest(
                    f"send the form field '{event.name}' before the file, not after it"
                )


def _events(stream: IO[bytes], boundary: str) -> Iterator[Event]:
    """The parser's events for the whole body (read to its end); ``InvalidRequest`` for a body
    that is not multipart, is cut short, or exceeds a limit."""
    read, started = 0, False
    try:
        parser = PushMultipartParser(boundary, max_segment_count=MAX_PARTS)
        while not parser.closed:  # an empty read (the end) closes it, or raises if incomplete
            chunk = stream.read(READ_SIZE)
            read += len(chunk)
            for event in parser.parse(chunk):
                started = True
                yield event
            if not started and read > MAX_PREAMBLE:
                raise InvalidRequest(
                    f"malformed multipart body: no boundary within {MAX_PREAMBLE} bytes"
                )
    except MultipartError as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from None


def _part_data(events: Iterator[Event]) -> Iterator[bytes]:
    for event in events:
        if event is None:
            return
        if not isinstance(event, bytes):
            raise InvalidRequest("malformed multipart body")
        yield event
