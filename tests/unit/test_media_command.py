"""The ffmpeg command lines: hardened flags always, and the audio options each input needs."""

from pathlib import Path
from typing import Any

import pytest

from video2mp3.converter.command import command, copies, loudness_command, output_rate
from video2mp3.converter.cover import cover_command
from video2mp3.converter.facts import AudioStream, MediaInfo
from video2mp3.converter.loudness import PEAK_CEILING, Loudness, gain
from video2mp3.domain.options import ConversionOptions

SRC, DST = Path("/tmp/in"), Path("/tmp/out.mp3")


def info(codec: str = "aac", channels: int = 2, rate: int = 44100, **more: Any) -> MediaInfo:
    stream = AudioStream(1, codec, channels, rate, duration=10.0)
    return MediaInfo("mov", 10.0, (stream,), **more)


def build(codec: str = "aac", channels: int = 2, rate: int = 44100, **options: Any) -> list[str]:
    return command(
        "ffmpeg", SRC, DST, info(codec, channels, rate), ConversionOptions(**options), 3600
    )


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


def test_a_file_still_arriving_is_read_from_the_standard_input_only() -> None:
    args = command("ffmpeg", None, DST, info(), ConversionOptions(), 3600)
    before_input = args[: args.index("-i")]
    assert value(args, "-i") == "pipe:0"
    assert value(before_input, "-protocol_whitelist") == "pipe"  # not "file": nothing else
    assert value(before_input, "-format_whitelist") == value(build(), "-format_whitelist")


def test_only_the_chosen_audio_stream_and_never_video() -> None:
    args = build()
    assert value(args, "-map") == "0:1"
    assert {"-vn", "-sn", "-dn"} <= set(args)


def test_output_is_bounded_and_carries_no_metadata() -> None:
    args = build()
    assert float(value(args, "-t")) == 3600
    assert int(value(args, "-fs")) > 3600 * 320_000 // 8
    assert value(args, "-map_metadata") == "-1"
    assert value(args, "-map_chapters") == "-1"
    assert value(args, "-id3v2_version") == "0"


def test_default_quality_is_vbr_v2_and_a_bitrate_can_be_asked() -> None:
    assert value(build(), "-q:a") == "2"
    assert value(build(quality=6), "-q:a") == "6"
    args = build(bitrate=128)
    assert value(args, "-b:a") == "128k"
    assert "-q:a" not in args


def test_surround_is_downmixed_to_stereo_and_channels_can_be_asked() -> None:
    assert value(build(channels=6), "-ac") == "2"
    assert "-ac" not in build(channels=1)
    assert value(command("f", SRC, DST, info(), ConversionOptions(channels=1), 60), "-ac") == "1"


@pytest.mark.parametrize(
    ("rate", "expected"), [(96000, 48000), (88200, 44100), (37800, 44100), (7350, 8000)]
)
def test_rates_mp3_cannot_hold_are_resampled(rate: int, expected: int) -> None:
    assert value(build(rate=rate), "-ar") == str(expected)
    assert "-ar" not in build(rate=22050)
    assert "-ar" not in build(rate=8000)


def test_a_sample_rate_can_be_asked_and_high_cbr_needs_32_khz() -> None:
    assert value(build(sample_rate=22050), "-ar") == "22050"
    stream = AudioStream(0, "aac", 2, 22050)
    assert output_rate(stream, ConversionOptions(bitrate=320)) == 44100
    assert output_rate(stream, ConversionOptions(bitrate=160)) == 22050
    assert output_rate(AudioStream(0, "amr_nb", 1, 8000), ConversionOptions(bitrate=192)) == 32000


def test_trim_seeks_before_the_input_and_bounds_the_output() -> None:
    args = build(start="1:00", end="1:30.5")
    assert value(args[: args.index("-i")], "-ss") == "60.000"
    assert float(value(args, "-t")) == 30.5
    assert float(value(build(end=12), "-t")) == 12


def test_mp3_input_is_copied_unless_an_option_changes_the_audio() -> None:
    assert value(build(codec="mp3"), "-c:a") == "copy"
    assert value(build(codec="mp3", channels=2), "-c:a") == "copy"
    stream = AudioStream(0, "mp3", 2, 44100)
    for change in (
        {"bitrate": 96},
        {"quality": 4},
        {"channels": 1},
        {"sample_rate": 22050},
        {"start": 1},
        {"end": 2},
        {"normalize": -16},
    ):
        assert not copies(stream, ConversionOptions(**change)), change
    assert value(build(codec="mp3", bitrate=96), "-c:a") == "libmp3lame"


def test_normalize_measures_first_then_applies_one_gain() -> None:
    options = ConversionOptions(normalize=-16, start=2)
    first = loudness_command("ffmpeg", SRC, info(), options, 3600)
    assert value(first, "-af").startswith("ebur128=peak=true")
    assert value(first, "-ss") == "2.000"
    assert first[-3:] == ["-f", "null", "-"]
    args = command("ffmpeg", SRC, DST, info(), options, 3600, gain(-16, Loudness(-26.0, -20.0)))
    assert value(args, "-af") == "volume=10.00dB"


def test_the_gain_stops_at_the_peak_ceiling() -> None:
    assert gain(-16, Loudness(-30.0, -20.0)) == 14.0
    assert gain(-16, Loudness(-20.0, -3.0)) == PEAK_CEILING + 3.0
    assert gain(-23, Loudness(-10.0, -1.0)) == -13.0
    assert gain(-16, Loudness(float("-inf"), float("-inf"))) == 0.0


def test_a_track_is_chosen_by_index_language_or_default() -> None:
    streams = (
        AudioStream(1, "aac", 2, 48000, language="eng"),
        AudioStream(2, "aac", 2, 48000, language="fre", default=True),
        AudioStream(3, "ac3", 6, 48000, language="deu"),
    )
    media = MediaInfo("matroska,webm", 5.0, streams)
    assert media.choose_track(None).index == 2
    assert media.choose_track("0").index == 1
    assert media.choose_track("fr").index == 2
    assert media.choose_track("ger").index == 3
    assert MediaInfo("mov", 5.0, streams[:1]).choose_track(None).index == 1


@pytest.mark.parametrize("track", ["3", "ja"])
def test_a_missing_track_is_a_clear_error(track: str) -> None:
    from video2mp3.errors import MediaError

    media = MediaInfo("mov", 5.0, (AudioStream(1, "aac", 2, 48000, language="eng"),))
    with pytest.raises(MediaError) as caught:
        media.choose_track(track)
    assert caught.value.code == "no_such_track"
    assert "0: eng" in caught.value.message


def test_truncated_means_the_data_ends_before_the_announced_duration() -> None:
    assert MediaInfo("mov", 5.0, (), data_end=1.7).truncated
    assert not MediaInfo("mov", 5.0, (), data_end=4.99).truncated
    assert not MediaInfo("mpegts", None, (), data_end=None).truncated
    assert not MediaInfo("mp3", 18.1, (), data_end=6.0).truncated  # a guess from the bitrate


def test_the_cover_is_a_frame_of_a_video_and_none_for_audio() -> None:
    video = info(video=(0,), attached_pictures=(2,))
    frame = cover_command("ffmpeg", SRC, DST, video, ConversionOptions())
    assert frame is not None
    assert value(frame, "-map") == "0:0"
    assert float(value(frame, "-ss")) == pytest.approx(1.0)  # 10% of 10 s
    assert "signalstats" in value(frame, "-vf")
    source = cover_command("ffmpeg", SRC, DST, video, ConversionOptions(cover="source"))
    assert source is not None
    assert value(source, "-map") == "0:2"
    assert cover_command("ffmpeg", SRC, DST, video, ConversionOptions(cover="none")) is None
    assert cover_command("ffmpeg", SRC, DST, info(), ConversionOptions()) is None
    trimmed = cover_command("f", SRC, DST, video, ConversionOptions(start=4, end=8))
    assert trimmed is not None
    assert float(value(trimmed, "-ss")) == pytest.approx(4.4)
