"""Each conversion option, verified by reading the MP3 back: codec, channels, rate and duration
with libavformat, tags, cover and chapters with mutagen, loudness with ffmpeg's ebur128."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import av
import pytest
from mutagen.id3 import ID3, Encoding, PictureType
from mutagen.mp3 import MP3, BitrateMode

from tests.integration.harness import Harness
from tests.support import CORPUS, FFMPEG, inspect_audio, loudness
from video2mp3.domain.events import ConversionFailed
from video2mp3.domain.options import ConversionOptions

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)

LOCATION = "+48.8584+002.2945/"
CHAPTERS = """;FFMETADATA1
title=Trip to Åre ☃
location={location}
com.apple.quicktime.location.ISO6709={location}
com.apple.quicktime.make=Apple
com.apple.quicktime.model=iPhone 15
encoder=SecretCam 1.0
comment=shot at home
[CHAPTER]
TIMEBASE=1/1000
START=0
END=2000
title=Black
[CHAPTER]
TIMEBASE=1/1000
START=2000
END=5000
title=Colours
[CHAPTER]
TIMEBASE=1/1000
START=5000
END=8000
title=Finale
"""


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def phone_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s of 1280x720 video, black for the first second, with chapters, a title, a location,
    a device and an encoder tag, and stereo noise."""
    folder = tmp_path_factory.mktemp("phone")
    metadata = folder / "metadata.txt"
    metadata.write_text(CHAPTERS.format(location=LOCATION))
    path = folder / "phone.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "color=black:size=1280x720:rate=15:duration=1"),
        *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=15:duration=7"),
        *("-f", "lavfi", "-i", "anoisesrc=d=8:r=48000:a=0.1:c=pink", "-i", str(metadata)),
        *("-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "2:a"),
        *("-map_metadata", "3", "-map_chapters", "3", "-ac", "2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"),
        *("-movflags", "+faststart+use_metadata_tags", str(path)),
    )
    return path


@pytest.fixture(scope="module")
def song_with_cover(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP3 song carrying a 1000x1000 PNG as its attached picture."""
    folder = tmp_path_factory.mktemp("song")
    path = folder / "song.mp3"
    ffmpeg(
        *("-f", "lavfi", "-i", "sine=f=330:d=3:r=44100"),
        *("-f", "lavfi", "-i", "testsrc2=size=1000x1000:duration=1", "-frames:v", "1"),
        *("-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-b:a", "96k", "-c:v", "png"),
        *("-disposition:v", "attached_pic", "-id3v2_version", "3", str(path)),
    )
    return path


def convert(tmp_path: Path, source: Path, **options: Any) -> Path:
    harness = Harness(tmp_path)
    event = harness.convert(source.read_bytes(), source.name, ConversionOptions(**options))
    return harness.mp3(event, tmp_path)


def audio_of(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        ctx = container.streams.audio[0].codec_context
        return ctx.channels, ctx.sample_rate


def mean_luma(frame: av.VideoFrame) -> float:
    plane = frame.reformat(format="gray").planes[0]
    data = bytes(plane)
    rows = [
        data[y * plane.line_size : y * plane.line_size + frame.width] for y in range(frame.height)
    ]
    return sum(map(sum, rows)) / (frame.width * frame.height)


def test_defaults(phone_video: Path, tmp_path: Path) -> None:
    mp3 = convert(tmp_path, phone_video)
    assert audio_of(mp3) == (2, 48000)
    assert abs(inspect_audio(mp3).duration - 8.0) <= 0.1
    assert MP3(mp3).info.bitrate_mode == BitrateMode.VBR
    tag = ID3(mp3)
    assert tag.version == (2, 4, 0)
    assert tag["TIT2"].text == ["Trip to Åre ☃"]  # the source's title
    assert tag["TIT2"].encoding == Encoding.UTF8


def test_quality_and_bitrate(phone_video: Path, tmp_path: Path) -> None:
    best = MP3(convert(tmp_path / "q0", phone_video, quality=0)).info
    worst = MP3(convert(tmp_path / "q9", phone_video, quality=9)).info
    assert best.bitrate_mode == worst.bitrate_mode == BitrateMode.VBR
    assert best.bitrate > 2 * worst.bitrate
    cbr = MP3(convert(tmp_path / "cbr", phone_video, bitrate=96)).info
    assert cbr.bitrate_mode in (BitrateMode.CBR, BitrateMode.UNKNOWN)
    assert cbr.bitrate == 96_000


def test_channels_and_sample_rate(phone_video: Path, tmp_path: Path) -> None:
    assert audio_of(convert(tmp_path / "a", phone_video, channels=1)) == (1, 48000)
    assert audio_of(convert(tmp_path / "b", phone_video, sample_rate=22050)) == (2, 22050)
    assert audio_of(convert(tmp_path / "c", phone_video, channels=2, sample_rate=44100)) == (
        2,
        44100,
    )


def test_trim_keeps_the_chapters_inside_shifted(phone_video: Path, tmp_path: Path) -> None:
    mp3 = convert(tmp_path, phone_video, start="00:03", end=6.5)
    assert abs(inspect_audio(mp3).duration - 3.5) <= 0.1
    chapters = sorted(ID3(mp3).getall("CHAP"), key=lambda c: c.start_time)
    assert [(c.start_time, c.end_time, c.sub_frames["TIT2"].text[0]) for c in chapters] == [
        (0, 2000, "Colours"),
        (2000, 3500, "Finale"),
    ]


def test_chapters_become_chap_and_ctoc_frames(phone_video: Path, tmp_path: Path) -> None:
    tag = ID3(convert(tmp_path / "on", phone_video))
    (toc,) = tag.getall("CTOC")
    assert toc.child_element_ids == ["ch0", "ch1", "ch2"]
    titles = {c.element_id: c.sub_frames["TIT2"].text[0] for c in tag.getall("CHAP")}
    assert titles == {"ch0": "Black", "ch1": "Colours", "ch2": "Finale"}
    assert tag.getall("CHAP")[0].start_time == 0
    off = ID3(convert(tmp_path / "off", phone_video, chapters=False))
    assert not off.getall("CHAP")
    assert not off.getall("CTOC")


def test_tags_are_ours_and_nothing_of_the_source_leaks(phone_video: Path, tmp_path: Path) -> None:
    mp3 = convert(
        tmp_path, phone_video, title="Été ☀", artist="Zoë", album="Trips", year="2024-07-14"
    )
    tag = ID3(mp3)
    texts = {key: str(frame.text[0]) for key, frame in tag.items() if key.startswith("T")}
    assert texts == {"TIT2": "Été ☀", "TPE1": "Zoë", "TALB": "Trips", "TDRC": "2024-07-14"}
    assert all(frame.encoding == Encoding.UTF8 for key, frame in tag.items() if key[0] == "T")
    assert set(tag.keys()) - set(texts) <= {"APIC:", "CTOC:toc", "CHAP:ch0", "CHAP:ch1", "CHAP:ch2"}
    raw = mp3.read_bytes()
    for secret in (LOCATION, "iPhone", "Apple", "SecretCam", "shot at home", "Lavf"):
        assert secret.encode() not in raw, secret


def test_the_cover_is_a_small_jpeg_of_a_frame_that_is_not_black(
    phone_video: Path, tmp_path: Path
) -> None:
    mp3 = convert(tmp_path, phone_video)
    (cover,) = ID3(mp3).getall("APIC")
    assert (cover.type, cover.mime) == (PictureType.COVER_FRONT, "image/jpeg")
    jpeg = tmp_path / "cover.jpg"
    jpeg.write_bytes(cover.data)
    with av.open(str(jpeg)) as image:
        frame = next(image.decode(video=0))
        assert image.streams.video[0].codec_context.codec.name == "mjpeg"
        assert max(frame.width, frame.height) <= 600
        assert frame.width == 600  # 16:9 kept
        assert mean_luma(frame) > 40  # the first second is black; 10% in is 0.8 s
    assert not ID3(convert(tmp_path / "none", phone_video, cover="none")).getall("APIC")


def test_cover_source_is_the_attached_picture(song_with_cover: Path, tmp_path: Path) -> None:
    assert not ID3(convert(tmp_path / "default", song_with_cover)).getall("APIC")  # audio: none
    (cover,) = ID3(convert(tmp_path / "source", song_with_cover, cover="source")).getall("APIC")
    jpeg = tmp_path / "cover.jpg"
    jpeg.write_bytes(cover.data)
    with av.open(str(jpeg)) as image:
        frame = next(image.decode(video=0))
        assert (frame.width, frame.height) == (600, 600)
    assert cover.mime == "image/jpeg"


def test_an_mp3_source_is_copied_unless_an_option_changes_it(
    song_with_cover: Path, tmp_path: Path
) -> None:
    def packets(path: Path) -> list[bytes]:
        with av.open(str(path)) as container:
            return [bytes(p) for p in container.demux(audio=0) if p.size]

    source = packets(song_with_cover)
    assert packets(convert(tmp_path / "copy", song_with_cover)) == source
    assert packets(convert(tmp_path / "cbr", song_with_cover, bitrate=64)) != source


@pytest.mark.parametrize("target", [-23.0, -16.0])
def test_normalize_reaches_the_target_under_the_peak_bound(
    phone_video: Path, tmp_path: Path, target: float
) -> None:
    before, _ = loudness(phone_video)
    integrated, peak = loudness(convert(tmp_path, phone_video, normalize=target))
    assert abs(before - target) > 3  # the source is far from the target
    assert abs(integrated - target) <= 1.0
    assert peak <= -1.0


def test_a_target_too_loud_for_the_peaks_stops_at_the_peak_bound(
    phone_video: Path, tmp_path: Path
) -> None:
    integrated, peak = loudness(convert(tmp_path, phone_video, normalize=-5))
    assert peak <= -1.0
    assert integrated < -5


def test_a_track_by_language_or_index(corpus: dict[str, Path], tmp_path: Path) -> None:
    source = corpus["two_languages.mkv"]
    assert CORPUS["two_languages.mkv"].audio_seconds == 3.0  # default: the French track
    english = convert(tmp_path / "en", source, track="en")
    assert abs(inspect_audio(english).duration - 2.0) <= 0.1
    french = convert(tmp_path / "fr", source, track="1")
    assert abs(inspect_audio(french).duration - 3.0) <= 0.1
    harness = Harness(tmp_path / "de")
    event = harness.convert(source.read_bytes(), "x.mkv", ConversionOptions(track="de"))
    assert isinstance(event.data, ConversionFailed)
    assert event.data.code == "no_such_track"
    assert "0: eng, 1: fre" in event.data.message


def test_a_start_past_the_end_is_a_clear_error(
    phone_video: Path, corpus: dict[str, Path], tmp_path: Path
) -> None:
    harness = Harness(tmp_path)
    event = harness.convert(phone_video.read_bytes(), "p.mp4", ConversionOptions(start=60))
    assert isinstance(event.data, ConversionFailed)
    assert event.data.code == "invalid_trim"
    # 2 s of audio in 3 s of video: a start at 2.5 s is inside the file but after its audio.
    short = corpus["audio_shorter.mkv"].read_bytes()
    event = harness.convert(short, "s.mkv", ConversionOptions(start=2.5))
    assert isinstance(event.data, ConversionFailed)
    assert (event.data.code, event.data.message) == (
        "invalid_trim",
        "there is no audio after the start you chose",
    )
