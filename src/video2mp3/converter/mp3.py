"""MPEG audio Layer III as bytes: frame lengths, and the Xing/LAME header frame that tells a
player how many frames follow and how many samples of them are real (gapless playback)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

FRAME = 1152  # samples per MPEG-1 Layer III frame (32 kHz and up)


def frame_samples(rate: int) -> int:
    """Samples per Layer III frame: 1152 for MPEG-1, 576 for MPEG-2 and 2.5 (below 32 kHz)."""
    return FRAME if rate >= 32000 else FRAME // 2


def starts(data: bytes) -> list[int]:
    """Where each MPEG audio frame of a raw MP3 stream (no ID3 tag in front) starts, and where
    the last one ends: frame ``i`` is ``data[starts[i]:starts[i + 1]]``."""
    found, at = [0], 0
    while at + 4 <= len(data):
        size = frame_size(data[at : at + 4])
        if size is None:
            raise ValueError(f"no MPEG audio frame at byte {at}")
        at = min(at + size, len(data))  # a last frame cut short ends where the data does
        found.append(at)
    return found


_BITRATES = {  # kbps by index: MPEG-1 Layer III, then MPEG-2/2.5 Layer III
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def frame_size(header: bytes) -> int | None:
    """The length in bytes of the Layer III frame that starts with ``header``."""
    if header[0] != 0xFF or header[1] & 0xE0 != 0xE0 or (header[1] >> 1) & 3 != 1:
        return None
    version = (header[1] >> 3) & 3
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 3
    if version == 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    kbps = _BITRATES[3 if version == 3 else 2][bitrate_index]
    rate = _RATES[version][rate_index]
    per_frame = 144 if version == 3 else 72  # bytes per (kbps / kHz)
    return per_frame * kbps * 1000 // rate + ((header[2] >> 1) & 1)


def _fields(frame: bytes) -> tuple[int, int]:
    """Where the Xing tag starts, and where the LAME extension's delay and padding are;
    ``ValueError`` unless the frame has a Xing tag with frames, bytes and seek table."""
    tag = max(frame.find(b"Xing", 0, 64), frame.find(b"Info", 0, 64))
    flags = int.from_bytes(frame[tag + 4 : tag + 8], "big") if tag >= 0 else 0
    if tag < 0 or flags & 0b111 != 0b111:
        raise ValueError("no complete Xing header")
    lame = tag + 116 + (4 if flags & 8 else 0)  # the LAME extension after the quality field
    return tag, lame + 9 + 1 + 1 + 8 + 1 + 1  # encoder, revision, lowpass, gain, ...


def seconds(path: Path) -> float | None:
    """How long a bare MP3 (no ID3 in front) plays, to the sample, from its Xing/LAME header;
    ``None`` without one."""
    found = samples(path)
    return None if found is None else found[0] / found[1]


def samples(path: Path) -> tuple[int, int] | None:
    """The samples a bare MP3 decodes to and its sample rate, from its Xing/LAME header;
    ``None`` without one."""
    with path.open("rb") as mp3:
        head = mp3.read(4)
        size = frame_size(head) if len(head) == 4 else None
        if size is None:
            return None
        frame = head + mp3.read(size - 4)
    try:
        tag, fields = _fields(frame)
    except ValueError:
        return None
    count = int.from_bytes(frame[tag + 8 : tag + 12], "big")
    pads = int.from_bytes(frame[fields : fields + 3], "big")
    rate = _RATES[(frame[1] >> 3) & 3][(frame[2] >> 2) & 3]
    return count * frame_samples(rate) - (pads >> 12) - (pads & 4095), rate


def completed(header: bytes, sizes: Sequence[int], samples: int, per_frame: int) -> bytes:
    """The Xing/LAME header frame describing ``sizes`` frames that decode to ``samples``."""
    frame = bytearray(header)
    tag, fields = _fields(header)
    total = len(frame) + sum(sizes)
    frame[tag + 8 : tag + 12] = len(sizes).to_bytes(4, "big")
    frame[tag + 12 : tag + 16] = total.to_bytes(4, "big")
    starts = [len(frame)]
    for size in sizes:
        starts.append(starts[-1] + size)
    toc = bytes(
        min(255, starts[len(sizes) * i // 100] * 256 // total) for i in range(100)
    )  # the byte position of each percent of the playing time, in 256ths of the file
    frame[tag + 16 : tag + 116] = toc
    delay = int.from_bytes(frame[fields : fields + 3], "big") >> 12
    padding = len(sizes) * per_frame - samples - delay
    frame[fields : fields + 3] = ((delay << 12) | min(max(padding, 0), 4095)).to_bytes(3, "big")
    frame[fields + 7 : fields + 11] = total.to_bytes(4, "big")  # music length
    # The music checksum is left empty: no decoder checks it, and a CRC of the whole stream in
    # Python would cost more than the join itself. The tag's own checksum is kept valid.
    frame[fields + 11 : fields + 13] = bytes(2)
    frame[fields + 13 : fields + 15] = crc16(bytes(frame[: fields + 13])).to_bytes(2, "big")
    return bytes(frame)


def crc16(data: bytes) -> int:
    """CRC-16/ARC, the checksum of LAME tags."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc
