"""Channel layouts as the converter's ffmpeg describes them: counted, and put in its order."""

from __future__ import annotations

import pytest

from tests.support import FFMPEG
from video2mp3.converter.channels import channel_count, for_resampler

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)


@pytest.mark.parametrize(
    ("layout", "count"),
    [("mono", 1), ("stereo", 2), ("5.1(side)", 6), ("7.1(wide)", 8), ("hexadecagonal", 16),
     ("8 channels", 8), ("8 channels (FL+FR+FC+LFE+SL+SR+BL+BR)", 8), ("ambisonic 1", 4),
     ("ambisonic 2+stereo", 11)],
)  # fmt: skip
def test_a_layout_counts_its_channels(layout: str, count: int) -> None:
    assert channel_count(FFMPEG, layout) == count


def test_an_unknown_layout_is_said_to_be_unknown() -> None:
    with pytest.raises(ValueError, match="unknown channel layout"):
        channel_count(FFMPEG, "octopus")


def test_channels_in_an_order_of_their_own_are_moved_by_name_into_ffmpegs() -> None:
    assert for_resampler(FFMPEG, "8 channels (FL+FR+FC+LFE+SL+SR+BL+BR)") == [
        "channelmap=map=FL-FL|FR-FR|FC-FC|LFE-LFE|SL-SL|SR-SR|BL-BL|BR-BR"
        ":channel_layout=FL+FR+FC+LFE+BL+BR+SL+SR"
    ]
    assert for_resampler(FFMPEG, "2 channels (FR+FL)") == [
        "channelmap=map=FR-FR|FL-FL:channel_layout=FL+FR"
    ]


@pytest.mark.parametrize(
    "layout",
    [None, "stereo", "7.1", "2 channels", "3 channels (FL+FR+FC)",  # it takes these
     "2 channels (FL+FL)", "2 channels (FL+USR9)"],  # nothing it could place
)  # fmt: skip
def test_other_layouts_are_left_as_they_are(layout: str | None) -> None:
    assert for_resampler(FFMPEG, layout) == []


def test_ambisonic_sound_is_decoded_to_stereo_with_its_head_locked_pair() -> None:
    assert for_resampler(FFMPEG, "ambisonic 1") == ["pan=stereo|c0=0.5*c0+0.5*c1|c1=0.5*c0-0.5*c1"]
    assert for_resampler(FFMPEG, "ambisonic 2+stereo") == [
        "pan=stereo|c0=0.5*c0+0.5*c1+c9|c1=0.5*c0-0.5*c1+c10"
    ]


def test_channels_without_names_get_the_standard_layout_of_their_count_or_a_plain_mix() -> None:
    assert for_resampler(FFMPEG, "6 channels") == ["channelmap=channel_layout=5.1"]
    assert for_resampler(FFMPEG, "8 channels") == ["channelmap=channel_layout=7.1"]
    assert for_resampler(FFMPEG, "13 channels") == [
        "pan=stereo|c0<c0+c2+c4+c6+c8+c10+c12|c1<c1+c3+c5+c7+c9+c11"
    ]
