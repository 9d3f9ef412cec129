"""Every real file: generated edge cases convert to all the audio they hold, and only files cut
off in transfer fail ``truncated``.

The expected length is what decoding the source's audio gives (PyAV), counted in samples; the
MP3's is what libavformat reads back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import Harness
from tests.support import CORPUS, decoded_seconds, inspect_audio
from video2mp3.domain.events import ConversionFailed, ConversionSucceeded

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)


@pytest.mark.parametrize("name", list(CORPUS))
def test_converts_all_the_audio_there_is(
    name: str, corpus: dict[str, Path], tmp_path: Path
) -> None:
    harness = Harness(tmp_path)
    event = harness.convert(corpus[name].read_bytes(), name)
    facts = inspect_audio(harness.mp3(event, tmp_path))
    source = decoded_seconds(corpus[name])
    assert abs(source - (CORPUS[name].audio_seconds or 0)) <= 0.1, source
    assert (facts.format, facts.codec) == ("mp3", "mp3")
    assert facts.channels in (1, 2)
    assert abs(facts.duration - source) <= 0.1, (facts, source)


def test_audio_that_ends_before_the_video_is_not_truncated(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("audio_shorter.mp4", "audio_shorter.mkv"):
        harness = Harness(tmp_path / name)
        event = harness.convert(corpus[name].read_bytes(), name)
        assert isinstance(event.data, ConversionSucceeded), event.data
        assert abs(event.data.duration - 2.0) <= 0.1  # the audio's 2 s, not the video's 3 s


@pytest.mark.parametrize("name", ["audio_shorter.mp4", "audio_shorter.mkv", "flac_88k.mkv"])
def test_a_file_cut_off_in_transfer_is_truncated(
    name: str, corpus: dict[str, Path], tmp_path: Path
) -> None:
    data = corpus[name].read_bytes()
    event = Harness(tmp_path).convert(data[: len(data) // 2], name)
    assert isinstance(event.data, ConversionFailed), event.data
    assert event.data.code == "truncated"
    assert "announces" in event.data.message
