"""The ffmpeg command line: hardened flags always, and the right audio options per input."""

from pathlib import Path

import pytest

from video2mp3.converter.media import MediaInfo, command
from video2mp3.domain.options import ConversionOptions

SRC, DST = Path("/tmp/in"), Path("/tmp/out.mp3")


def build(
    codec: str = "aac", channels: int = 2, rate: int = 44100, kbps: int | None = None
) -> list[str]:
    info = MediaInfo("mov", codec, channels, rate, 10.0)
    return command("ffmpeg", SRC, DST, info, ConversionOptions(bitrate=kbps), 3600)


def value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_hardening_flags_come_before_the_input() -> None:
    args = build()
    before_input = args[: args.index("-i")]
    assert "-nostdin" in before_input
    assert value(before_input, "-protocol_whitelist") == "file"
    formats = value(before_input, "-format_whitelist").split(",")
    assert "mov" in formats
    assert not {"hls", "concat", "image2", "tty", "lavfi"} & set(formats)


def test_only_the_first_audio_stream_and_never_video() -> None:
    args = build()
    assert value(args, "-map") == "0:a:0"
    assert {"-vn", "-sn", "-dn"} <= set(args)


def test_output_is_bounded() -> None:
    args = build()
    assert value(args, "-t") == "3600"
    assert int(value(args, "-fs")) > 3600 * 320_000 // 8


def test_default_quality_is_vbr_v2_and_a_bitrate_can_be_asked() -> None:
    assert value(build(), "-q:a") == "2"
    args = build(kbps=128)
    assert value(args, "-b:a") == "128k"
    assert "-q:a" not in args


def test_surround_is_downmixed_to_stereo() -> None:
    assert value(build(channels=6), "-ac") == "2"
    assert "-ac" not in build(channels=1)


@pytest.mark.parametrize(("rate", "expected"), [(96000, "48000"), (37800, "44100")])
def test_rates_mp3_cannot_hold_are_resampled(rate: int, expected: str) -> None:
    assert value(build(rate=rate), "-ar") == expected
    assert "-ar" not in build(rate=22050)


def test_mp3_input_is_copied_unless_a_bitrate_is_asked() -> None:
    assert value(build(codec="mp3"), "-c:a") == "copy"
    assert value(build(codec="mp3", kbps=96), "-c:a") == "libmp3lame"
