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
# Segments of an input spread across converters, at most: one per consumer of segments (a core).
# Each one decodes the audio from its start (AAC decodes only about 5 times faster than LAME
# encodes: ``DECODER_LEAD``), so segments beyond the cores at work would cost more than they save.
MAX_SPREAD = 16
# Seconds the decoder takes per second an encoder takes for the same audio (AAC to LAME's -V2,
# 10 min, on one core each: decoded in 0.65 s, encoded in 3.2 s; measured 0.85 s and 4.2 s on a
# slower machine): how late an encoder starts for each second of audio before its segment.
DECODER_LEAD = 0.2
ENCODER_DELAY = 576  # what LAME's tag counts; the padding makes up the rest of the last frame
# Floats between the decoder and the encoders, as a single pass gives LAME: a downmix to 16-bit
# integers is scaled down against clipping (3 dB quieter for stereo to mono), floats are not.
SAMPLE_FORMAT, SAMPLE_BYTES = "f32le", 4


@dataclass(frozen=True)
class Pcm:
    """Decoded audio in a raw ``SAMPLE_FORMAT`` file, which may still be growing: ``finished``
    is set once the decoder has written all of it (or failed). The file holds the audio from
    sample ``start`` on."""

    path: Path
    rate: int
    channels: int
    finished: threading.Event = field(default_factory=threading.Event)
    start: int = 0

    @property
    def samples(self) -> int:
        """Samples in the file (from ``start``)."""
        return self.path.stat().st_size // (SAMPLE_BYTES * self.channels)


def plan(samples: int, rate: int, workers: int) -> list[int]:
    """Segment boundaries (sample indices, on frame boundaries) from 0 to ``samples``, planned
    for the encoders to finish together: each starts once the decoder has reached its first
    sample, ``DECODER_LEAD`` of a second later per second of audio before it, so each segment
    is shorter than the one before by that much. With ``L`` the first one's length, the ``j``-th
    is ``L - lead * start_j``: the starts grow geometrically, ``start_j = total * (1 - keep**j) /
    (1 - keep**count)`` with ``keep = 1 - lead`` (55 % and 45 % for two segments)."""
    count = max(1, min(workers, int(samples / rate // MIN_SEGMENT_SECONDS)))
    size = frame_samples(rate)
    frames = -(-samples // size)
    keep = 1 - DECODER_LEAD
    cuts = [round(frames * (1 - keep**k) / (1 - keep**count)) * size for k in range(1, count)]
    return [0, *cuts, samples]


@dataclass(frozen=True)
class Piece:
    """One segment of a plan: which samples its encoder is given (its range with ``OVERLAP``
    frames either side) and which frames of its output the join keeps. Every piece's output
    starts with a Xing/LAME header frame: the first one's becomes the whole's, the last one's
    tells how many samples the audio really had."""

    index: int
    first: int  # first sample encoded
    stop: int | None  # sample after the last one encoded; None: to the end of the audio
    skip: int  # frames dropped after the header frame, before the kept ones
    keep: int  # frames kept; -1: all the rest


def pieces(bounds: Sequence[int], rate: int) -> list[Piece]:
    """The pieces of a plan (``plan``'s boundaries); the last one reads to the audio's end."""
    frame = frame_samples(rate)
    found = []
    for k, (start, end) in enumerate(itertools.pairwise(bounds)):
        last = k == len(bounds) - 2
        first = max(0, start - OVERLAP * frame)
        stop = None if last else min(bounds[-1], end + OVERLAP * frame)
        keep = -1 if last else (end - start) // frame
        found.append(Piece(k, first, stop, (start - first) // frame, keep))
    return found


@dataclass(frozen=True)
class Segment:
    """One ffmpeg's share: which bytes of the PCM it reads, and where it writes its frames."""

    index: int
    args: list[str]
    first_byte: int
    byte_count: int | None  # None: to the end of the audio, however long it turns out
    seconds: float  # expected


def segment(
    ffmpeg: str, piece: Piece, pcm: Pcm, encoder_args: Sequence[str], dst: Path, expected: int
) -> Segment:
    """The encoder of ``piece``: raw PCM on its standard input, a bare MP3 with a Xing/LAME
    header frame and no bit reservoir in ``dst``; ``expected`` samples in all."""
    width = SAMPLE_BYTES * pcm.channels
    args = [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
        "-f", SAMPLE_FORMAT, "-ar", str(pcm.rate), "-ac", str(pcm.channels),
        "-i", "pipe:0", *encoder_args, "-reservoir", "0", "-id3v2_version", "0",
        "-write_xing", "1", "-progress", "pipe:1", "-f", "mp3", str(dst),
    ]  # fmt: skip
    stop = expected if piece.stop is None else piece.stop
    count = None if piece.stop is None else (piece.stop - piece.first) * width
    first_byte = (piece.first - pcm.start) * width
    return Segment(piece.index, args, first_byte, count, (stop - piece.first) / pcm.rate)


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
    planned = pieces(bounds, pcm.rate)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix="segments-") as tmp:
        outputs = [Path(tmp, f"{piece.index}.mp3") for piece in planned]
        jobs = [
            segment(ffmpeg, piece, pcm, encoder_args, out, expected_samples)
            for piece, out in zip(planned, outputs, strict=True)
        ]
        with ThreadPoolExecutor(len(jobs)) as pool:
            for done in [pool.submit(run, job, pcm) for job in jobs]:
                done.result()
        check_length(pcm.samples, bounds, pcm.rate)
        join(planned, outputs, pcm.samples, pcm.rate, dst)
    return len(jobs)


def check_length(samples: int, bounds: Sequence[int], rate: int) -> None:
    """``ShortAudio`` unless the audio reaches into the last segment (past its overlap)."""
    if samples < bounds[-2] + OVERLAP * frame_samples(rate):
        raise ShortAudio(f"{samples} samples decoded, {bounds[-1]} expected")


class ShortAudio(Exception):
    """The decoded audio ended before the last segment began: encode it in one pass instead."""


def join(
    planned: Sequence[Piece], outputs: Sequence[Path], samples: int, rate: int, dst: Path
) -> None:
    """Concatenate the kept frames of each piece's output behind the first one's header frame,
    then complete that header for the whole: frame count, size, seek table and end padding."""
    header: bytes | None = None
    sizes: list[int] = []
    with dst.open("wb") as out:
        for piece, path in zip(planned, outputs, strict=True):
            data = path.read_bytes()
            bounds = mp3.starts(data)
            if header is None:
                header = data[: bounds[1]]
                out.write(header)  # completed below, once the frames are known
            first = 1 + piece.skip
            last = len(bounds) - 1 if piece.keep < 0 else first + piece.keep
            if not first <= last < len(bounds):
                raise ValueError(f"segment {piece.index} made too few frames")
            out.write(data[bounds[first] : bounds[last]])
            sizes += (b - a for a, b in itertools.pairwise(bounds[first : last + 1]))
        assert header is not None
        out.seek(0)
        out.write(mp3.completed(header, sizes, samples, frame_samples(rate)))
