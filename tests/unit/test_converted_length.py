"""Audio cut at the length limit is refused, whether its file said nothing of its length or
said less than it holds; audio that merely reaches the limit, as announced, is not."""

from __future__ import annotations

import pytest

from video2mp3.converter.worker import _check_length
from video2mp3.errors import MediaError


@pytest.mark.parametrize("announced", [None, 5.0, 590.0])
def test_audio_cut_at_the_limit_is_too_long(announced: float | None) -> None:
    with pytest.raises(MediaError) as refused:
        _check_length(announced, 599.8, 600)
    assert refused.value.code == "too_long"


@pytest.mark.parametrize(("announced", "converted"), [(600.0, 599.8), (599.4, 599.9), (None, 30.0)])
def test_audio_within_the_limit_is_not(announced: float | None, converted: float) -> None:
    _check_length(announced, converted, 600)
