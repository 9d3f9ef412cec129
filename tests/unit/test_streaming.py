"""Which uploads start converting while they arrive: the head's container, sniffed from its
bytes, and the moment the job is queued."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from video2mp3.gateway.streaming import EarlyStart, front_to_back


def box(kind: bytes, body: bytes = b"", *, large: bool = False) -> bytes:
    if large:  # a 64-bit size after the type
        return struct.pack(">I4sQ", 1, kind, 16 + len(body)) + body
    return struct.pack(">I4s", 8 + len(body), kind) + body


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + bytes(100), True),  # Matroska / WebM
        (b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(100), True),
        (b"FLV\x01\x05\x00\x00\x00\x09" + bytes(100), True),
        ((b"\x47" + bytes(187)) * 6, True),  # MPEG-TS: a sync byte every 188
        (FTYP + box(b"moov", bytes(500)) + box(b"mdat", bytes(100)), True),  # faststart
        (FTYP + box(b"free", bytes(8)) + box(b"moov", bytes(10)), True),
        (FTYP + box(b"mdat", bytes(500)) + box(b"moov", bytes(10)), False),  # moov at the end
        (FTYP + box(b"mdat", bytes(500), large=True), False),
        (FTYP + box(b"free", bytes(10_000))[:100], False),  # undecided within the head
        (FTYP + struct.pack(">I4s", 0, b"wide"), False),  # a box to the end of the file
        (b"RIFF\x00\x10\x00\x00WAVEfmt " + bytes(100), False),  # not a container we stream
        ((b"\x47" + bytes(187)) * 4 + b"\x00" + bytes(187), False),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n", False),
        (b"", False),
    ],
)
def test_containers_read_front_to_back_are_recognised(head: bytes, expected: bool) -> None:
    assert front_to_back(head) is expected


def stream(*sizes: int, head: bytes) -> Iterator[bytes]:
    yield head
    for size in sizes:
        yield bytes(size)


MKV = b"\x1a\x45\xdf\xa3" + bytes(96)


def watched(early: EarlyStart, chunks: Iterator[bytes]) -> list[bool]:
    """Whether the job had started after each chunk was taken."""
    return [early.started for _ in early.watch(chunks)] + [early.started]


def test_the_job_starts_once_enough_is_stored() -> None:
    starts: list[int] = []
    early = EarlyStart(1000, lambda: starts.append(1))
    # Seen before each chunk is taken: 100 bytes, then 100+600, then 100+600+600.
    assert watched(early, stream(600, 600, 600, head=MKV)) == [False, False, False, True, True]
    assert starts == [1]


def test_a_short_upload_or_a_moov_at_the_end_does_not_start_early() -> None:
    assert watched(EarlyStart(10_000, lambda: None), stream(600, head=MKV))[-1] is False
    moov_last = FTYP + box(b"mdat", bytes(5000))
    assert watched(EarlyStart(1000, lambda: None), stream(5000, head=moov_last))[-1] is False
    assert watched(EarlyStart(0, lambda: None), stream(5000, head=MKV))[-1] is False  # off
