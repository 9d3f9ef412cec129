"""Segmented encoding on real ffmpeg: as long as a single pass to the sample, and no seam shows.

The measure of a seam: the decoded MP3 minus the source audio, as RMS per MP3 frame. Around each
seam it must be no larger than the largest anywhere else in the file; a bad splice (a missing or
doubled frame, data borrowed from another encode's bit reservoir, an unwarmed encoder) shows as a
burst of error there many times the quantisation noise.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests.support import FFMPEG
from video2mp3.converter.segments import FRAME, Pcm, encode, feed, plan

RATE = 48000


def decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)


def run(args: list[str], pcm: Path, offset: int, count: int) -> None:
    assert feed(args, pcm, offset, count, stderr=subprocess.DEVNULL) == 0


@pytest.mark.parametrize(("seconds", "quality"), [(95.3, ["-q:a", "2"]), (99.0, ["-b:a", "128k"])])
def test_segments_join_gapless_and_without_a_seam(
    tmp_path: Path, seconds: float, quality: list[str]
) -> None:
    pcm = Pcm(tmp_path / "audio.f32", RATE, 2)
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i",
         f"anoisesrc=d={seconds}:c=pink:r={RATE}:a=0.3,aformat=channel_layouts=stereo",
         "-f", "f32le", str(pcm.path)],
        check=True,
    )  # fmt: skip
    single = tmp_path / "single.mp3"
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "f32le", "-ar", str(RATE), "-ac", "2",
         "-i", str(pcm.path), "-c:a", "libmp3lame", *quality, str(single)],
        check=True,
    )  # fmt: skip
    joined = tmp_path / "joined.mp3"
    assert encode(FFMPEG, pcm, joined, quality, 3, run) == 3

    source = np.fromfile(pcm.path, dtype="<f4").reshape(-1, 2).T
    ours, theirs = decoded(joined), decoded(single)
    assert ours.shape == theirs.shape == source.shape  # gapless: every sample, no more
    frames = source.shape[1] // FRAME
    error = (ours - source)[:, : frames * FRAME].reshape(2, frames, FRAME)
    rms = np.sqrt((error**2).mean(axis=(0, 2)))
    seams = {b // FRAME + d for b in plan(source.shape[1], RATE, 3)[1:-1] for d in (-1, 0, 1)}
    elsewhere = np.delete(rms, sorted(seams))
    assert rms[sorted(seams)].max() <= elsewhere.max()


def test_a_short_input_is_one_segment() -> None:
    assert plan(20 * RATE, RATE, 4) == [0, 20 * RATE]
    bounds = plan(200 * RATE, RATE, 4)
    assert len(bounds) == 5
    assert all(b % FRAME == 0 for b in bounds[:-1])
