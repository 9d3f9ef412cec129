"""Conversion while the upload arrives: which uploads can start converting early, and when.

A converter can read a container front to back as its bytes arrive (ffmpeg through a pipe) when
everything it needs to demux comes before the data: Matroska/WebM (EBML), MPEG-TS, AVI (RIFF),
FLV, and MP4 whose ``moov`` box (the index) comes before ``mdat`` (the data). An MP4 with the
``moov`` at its end cannot be demuxed before its last bytes are in: it is converted after the
upload, as is anything not recognised from its first bytes. The head is sniffed here from the
bytes themselves, never from a file name or a declared type.

The job is queued once ``after_bytes`` have been stored: an upload shorter than that is over
before a conversion started early would overlap it by much, so it is queued at its end as before.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator

SNIFF_BYTES = 64 * 1024  # top-level MP4 boxes before moov (ftyp, free, uuid) are small
TS_PACKET, TS_SYNC, TS_PACKETS = 188, 0x47, 5


def front_to_back(head: bytes) -> bool:
    """Whether a file starting with ``head`` can be converted while the rest arrives."""
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, WebM
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return True
    if head.startswith(b"FLV\x01"):
        return True
    if head[4:8] == b"ftyp":
        return _moov_first(head)
    packets = range(0, TS_PACKET * TS_PACKETS, TS_PACKET)
    return len(head) >= TS_PACKET * TS_PACKETS and all(head[i] == TS_SYNC for i in packets)


def _moov_first(head: bytes) -> bool:
    """Whether the top-level boxes in ``head`` reach a ``moov`` before an ``mdat``."""
    offset = 0
    while offset + 8 <= len(head):
        size, kind = struct.unpack_from(">I4s", head, offset)
        if size == 1 and offset + 16 <= len(head):  # a 64-bit size follows the type
            size = struct.unpack_from(">Q", head, offset + 8)[0]
        if kind == b"moov":
            return True
        if kind == b"mdat" or size < 8:  # the data first, or a box to the end of the file
            return False
        offset += size
    return False  # undecided within the head: after the upload, to be safe


class EarlyStart:
    """Passes an upload's chunks on to the blob store and calls ``start`` once, when the first
    ``after_bytes`` (0: never) are stored and the head shows a container read front to back."""

    def __init__(self, after_bytes: int, start: Callable[[], None]) -> None:
        self.after_bytes = after_bytes
        self.started = False
        self._start = start

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        head, seen, decided = b"", 0, not self.after_bytes
        for chunk in chunks:
            yield chunk  # asked for the next one, the store has taken this one
            seen += len(chunk)
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            if not decided and seen >= self.after_bytes:
                decided = True
                if front_to_back(head):
                    self._start()
                    self.started = True
