"""Segmented encoding on real ffmpeg: as long as a single pass to the sample, and no seam shows.

The measure of a seam: the decoded MP3 minus the source audio, as RMS per MP3 frame. Around each
seam it must be no larger than the largest anywhere else in the file; a bad splice (a missing or
doubled frame, data borrowed from another encode's bit reservoir, an unwarmed encoder) shows as a
burst of error there many times the quantisation noise. The noise is seeded: with a new one each
run, a seam frame was now and then (about once in 600 runs) the noisiest of the 3,800 by chance.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from mutagen.id3 import ID3

from tests.integration.harness import Harness
from tests.support import FFMPEG, decoded_seconds, inspect_audio, loudness
from video2mp3.converter.ffmpeg import Feed, within
from video2mp3.converter.ffmpeg import run as run_ffmpeg
from video2mp3.converter.mp3 import FRAME, frame_samples
from video2mp3.converter.segments import (
    DECODER_LEAD,
    SAMPLE_FORMAT,
    Pcm,
    Segment,
    encode,
    plan,
)
from video2mp3.domain.events import ConversionProgress, ConversionSucceeded
from video2mp3.domain.options import ConversionOptions

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)

RATE = 48000


def decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)


def run(segment: Segment, pcm: Pcm) -> None:
    stdin = Feed(pcm.path, segment.first_byte, segment.byte_count, pcm.finished)
    run_ffmpeg(segment.args, deadline=within(120), file_bytes=10**8, stdin=stdin)


@pytest.mark.parametrize(
    ("seconds", "quality", "rate", "channels"),
    [
        (95.3, ["-q:a", "2"], 48000, 2),
        (99.0, ["-b:a", "128k"], 44100, 2),
        (97.1, ["-q:a", "5"], 16000, 1),  # MPEG-2: 576 samples a frame
    ],
)
def test_segments_join_gapless_and_without_a_seam(
    tmp_path: Path, seconds: float, quality: list[str], rate: int, channels: int
) -> None:
    pcm = Pcm(tmp_path / "audio.pcm", rate, channels)
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i",
         f"anoisesrc=d={seconds}:c=pink:r={rate}:a=0.3:seed=1", "-ac", str(channels),
         "-f", SAMPLE_FORMAT, str(pcm.path)],
        check=True,
    )  # fmt: skip
    single = tmp_path / "single.mp3"
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", SAMPLE_FORMAT, "-ar", str(rate), "-ac", str(channels),
         "-i", str(pcm.path), "-c:a", "libmp3lame", *quality, str(single)],
        check=True,
    )  # fmt: skip
    joined = tmp_path / "joined.mp3"
    pcm.finished.set()
    args = ["-c:a", "libmp3lame", *quality]
    assert encode(FFMPEG, pcm, joined, args, 3, run, pcm.samples) == 3

    source = np.fromfile(pcm.path, dtype="<f4").reshape(-1, channels).T
    ours, theirs = decoded(joined), decoded(single)
    assert ours.shape == theirs.shape == source.shape  # gapless: every sample, no more
    size = frame_samples(rate)
    frames = source.shape[1] // size
    error = (ours - source)[:, : frames * size].reshape(channels, frames, size)
    rms = np.sqrt((error**2).mean(axis=(0, 2)))
    seams = {b // size + d for b in plan(source.shape[1], rate, 3)[1:-1] for d in (-1, 0, 1)}
    elsewhere = np.delete(rms, sorted(seams))
    assert rms[sorted(seams)].max() <= elsewhere.max()


def test_a_short_input_is_one_segment() -> None:
    assert plan(20 * RATE, RATE, 4) == [0, 20 * RATE]
    bounds = plan(200 * RATE, RATE, 4)
    assert len(bounds) == 5
    assert all(b % FRAME == 0 for b in bounds[:-1])


def test_a_segment_is_shorter_by_how_late_its_encoder_starts() -> None:
    bounds = plan(600 * RATE, RATE, 4)
    lengths = [end - start for start, end in itertools.pairwise(bounds)]
    for start, length in zip(bounds, lengths, strict=False):
        assert length == pytest.approx(lengths[0] - DECODER_LEAD * start, abs=FRAME)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """75 s of small video with 48 kHz stereo pink noise."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=5:d=75",
         "-f", "lavfi", "-i", "anoisesrc=d=75:c=pink:r=48000:a=0.2", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_the_converter_splits_a_long_input_and_every_option_holds(
    long_video: Path, tmp_path: Path
) -> None:
    harness = Harness(tmp_path, cores=3, segment_after=20)
    options = ConversionOptions(start=4.5, end=68.5, normalize=-20, channels=1, title="Long")
    assert len(plan(64 * 48000, 48000, 3)) == 3  # two segments
    event = harness.convert(long_video.read_bytes(), "long.mp4", options)
    assert isinstance(event.data, ConversionSucceeded), event.data
    mp3 = harness.mp3(event, tmp_path)
    assert decoded_seconds(mp3) == pytest.approx(64.0, abs=0.001)  # gapless, to the sample
    assert event.data.duration == pytest.approx(64.0, abs=0.001)
    facts = inspect_audio(mp3)
    assert (facts.codec, facts.channels) == ("mp3", 1)
    integrated, peak = loudness(mp3)
    assert integrated == pytest.approx(-20, abs=1.0)
    assert peak <= -1.0
    assert str(ID3(mp3)["TIT2"]) == "Long"
    progress = [
        e.data.progress for e in harness.bus.published if isinstance(e.data, ConversionProgress)
    ]
    assert progress == sorted(progress)


@pytest.mark.parametrize("start", [3.5, 5.5])
def test_a_trimmed_transport_stream_is_cut_to_the_sample(start: float, tmp_path: Path) -> None:
    """MPEG-TS timestamps tick at 90 kHz, not per sample: the decoder of a segmented encode
    must still give exactly the trim's samples (these starts were one sample off either way
    when the cut followed the container's timestamps)."""
    ts = tmp_path / "long.ts"
    subprocess.run([FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i",
                    "anoisesrc=d=80:c=pink:r=44100:a=0.2", "-ac", "2", "-c:a", "aac", str(ts)],
                   check=True)  # fmt: skip
    harness = Harness(tmp_path, cores=3, segment_after=20)
    event = harness.convert(
        ts.read_bytes(), "long.ts", ConversionOptions(start=start, end=start + 64)
    )
    assert round(decoded_seconds(harness.mp3(event, tmp_path)) * 44100) == 64 * 44100
