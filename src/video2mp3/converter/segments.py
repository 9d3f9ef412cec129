"""One long file on several cores: MP3 encoding split into segments, joined gapless.

LAME encodes on one core. A long input is first decoded once (with every filter: track, trim,
channels, rate, loudness) to raw PCM; the PCM is cut into segments, each encoded by its own
ffmpeg at once, and the MP3 frames are joined into one stream. Why the seams cannot be heard:

- Frame-exact cuts. Every segment starts on a multiple of a frame's samples (1152 for MPEG-1
  Layer III, 576 below 32 kHz), so frame ``j`` of a segment that starts at sample ``s`` is frame
  ``s / 1152 + j`` (at 32 kHz and up) of a
  single-pass encode: the same grid, with the encoder delay (576 samples, plus the decoder's 529)
  applying identically. The join keeps, from each segment, exactly the frames of its own range.
- Overlap. Each segment is encoded with ``OVERLAP`` frames of the audio before and after its
  range, which are dropped again: the encoder's filterbank, its look-ahead and its psychoacoustic
  model are warmed up on the same audio a single pass would have seen, so the frames either side
  of a seam are encoded as they would have been.
- No bit reservoir. A frame may keep part of its data in earlier frames' spare bytes; after a
  splice those bytes belong to another encode. Segmented encodes are made with ``-reservoir 0``,
  so every frame holds its own data (LAME's VBR modes lose very little by it).
- Gapless length. The first segment's Xing/LAME header frame is kept as the header of the whole,
  completed for the joined stream: frame count, size, seek table, end padding, tag checksum.
  Decoders that honour the LAME tag (ffmpeg, most players) give back
  exactly the input's samples, as for a single-pass encode.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from video2mp3.converter import mp3
from video2mp3.converter.mp3 import frame_samples

OVERLAP = 8  # frames of context either side of a segment (about 0.2 s)
MIN_SEGMENT_SECONDS = 30.0  # shorter pieces cost more in overlap and start-up than they gain
ENCODER_DELAY = 576  # what LAME's tag counts; the padding makes up the rest of the last frame
# Floats between the decoder and the encoders, as a single pass gives LAME: a downmix to 16-bit
# integers is scaled down against clipping (3 dB quieter for stereo to mono), floats are not.
SAMPLE_FORMAT, SAMPLE_BYTES = "f32le", 4


@dataclass(frozen=True)
class Pcm:
    """Decoded audio in a raw ``SAMPLE_FORMAT`` file, which may still be growing: ``finished``
    is set once the decoder has written all of it (or failed)."""

    path: Path
    rate: int
    channels: int
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def samples(self) -> int:
        return self.path.stat().st_size // (SAMPLE_BYTES * self.channels)


def plan(samples: int, rate: int, workers: int) -> list[int]:
    """Segment boundaries (sample indices, on frame boundaries) from 0 to ``samples``."""
    count = max(1, min(workers, int(samples / rate // MIN_SEGMENT_SECONDS)))
    size = frame_samples(rate)
    frames = -(-samples // size)
    cuts = [round(frames * k / count) * size for k in range(1, count)]
    return [0, *cuts, samples]


@dataclass(frozen=True)
class Segment:
    """One ffmpeg's share: which bytes of the PCM it reads, and where it writes its frames."""

    index: int
    args: list[str]
    first_byte: int
    byte_count: int | None  # None: to the end of the audio, however long it turns out
    seconds: float  # expected


def encode(
    ffmpeg: str,
    pcm: Pcm,
    dst: Path,
    encoder_args: Sequence[str],
    workers: int,
    run: Callable[[Segment, Pcm], None],
    expected_samples: int,
) -> int:
    """Encode ``pcm`` to the MP3 ``dst`` in up to ``workers`` segments at once; return how many.

    The segments are planned from ``expected_samples``, so that they can start while the PCM
    is still being decoded: ``run(segment, pcm)`` runs one segment's ffmpeg (``segment.args``)
    with the segment's bytes of the PCM on its standard input, as they arrive. ``ShortAudio``
    if the audio ends before a segment other than the last.
    """
    bounds = plan(expected_samples, pcm.rate, workers)
    width = SAMPLE_BYTES * pcm.channels
    frame = frame_samples(pcm.rate)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix="segments-") as tmp:
        parts: list[tuple[Path, int, int]] = []  # file, first frame kept, frames kept (-1: all)
        segments = []
        for k, (start, end) in enumerate(itertools.pairwise(bounds)):
            last = k == len(bounds) - 2
            first = max(0, start - OVERLAP * frame)
            stop = end if last else min(expected_samples, end + OVERLAP * frame)
            out = Path(tmp, f"{k}.mp3")
            args = [
                ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
                "-f", SAMPLE_FORMAT, "-ar", str(pcm.rate), "-ac", str(pcm.channels),
                "-i", "pipe:0", *encoder_args, "-reservoir", "0", "-id3v2_version", "0",
                "-write_xing", "1" if k == 0 else "0", "-progress", "pipe:1", "-f", "mp3", str(out),
            ]  # fmt: skip
            count = None if last else (stop - first) * width
            segments.append(Segment(k, args, first * width, count, (stop - first) / pcm.rate))
            parts.append((out, (start - first) // frame, -1 if last else (end - start) // frame))
        with ThreadPoolExecutor(len(segments)) as pool:
            for done in [pool.submit(run, segment, pcm) for segment in segments]:
                done.result()
        if pcm.samples < bounds[-2] + OVERLAP * frame:
            raise ShortAudio(f"{pcm.samples} samples decoded, {expected_samples} expected")
        join(parts, pcm.samples, frame, dst)
    return len(segments)


class ShortAudio(Exception):
    """The decoded audio ended before the last segment began: encode it in one pass instead."""


def join(parts: Sequence[tuple[Path, int, int]], samples: int, per_frame: int, dst: Path) -> None:
    """Concatenate the kept frames of each part behind the first part's header frame, then
    complete that header for the whole: frame count, size, seek table and end padding."""
    header: bytes | None = None
    sizes: list[int] = []
    with dst.open("wb") as out:
        for index, (path, first, keep) in enumerate(parts):
            found = mp3.frames(path.read_bytes())
            if index == 0:
                header, found = found[0], found[1:]  # the Xing/LAME frame of the first part
                out.write(header)  # completed below, once the frames are known
            chosen = found[first:] if keep < 0 else found[first : first + keep]
            if keep >= 0 and len(chosen) != keep:
                raise ValueError(f"segment {index} made {len(found)} frames, {first + keep} needed")
            for frame in chosen:
                out.write(frame)
                sizes.append(len(frame))
        assert header is not None
        out.seek(0)
        out.write(mp3.completed(header, sizes, samples, per_frame))
