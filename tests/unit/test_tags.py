"""Which tags an MP3 gets: the title's fallbacks, and the chapters a trim keeps."""

from pathlib import Path

from mutagen.id3 import ID3

from video2mp3.converter.facts import AudioStream, Chapter, MediaInfo
from video2mp3.converter.tags import Tags, choose_tags, trimmed, write_tags
from video2mp3.domain.options import ConversionOptions

STREAM = (AudioStream(0, "aac", 2, 44100),)
CHAPTERS = (Chapter(0, 10, "One"), Chapter(10, 20, "Two"), Chapter(20, 30, None))


def test_the_title_is_the_asked_one_else_the_sources_else_the_file_name() -> None:
    titled = MediaInfo("mov", 30.0, STREAM, title="From the file\n")
    untitled = MediaInfo("mov", 30.0, STREAM)
    assert choose_tags(titled, ConversionOptions(title="Asked"), "a.mp4").title == "Asked"
    assert choose_tags(titled, ConversionOptions(), "a.mp4").title == "From the file"
    assert choose_tags(untitled, ConversionOptions(), "my.holiday.mp4").title == "my.holiday"
    assert choose_tags(untitled, ConversionOptions(), r"C:\videos\clip.mov").title == "clip"


def test_only_chosen_tags_are_kept() -> None:
    media = MediaInfo("mov", 30.0, STREAM, chapters=CHAPTERS)
    tags = choose_tags(media, ConversionOptions(artist="A", album="B", year="2024"), "x.mp4")
    assert (tags.artist, tags.album, tags.year) == ("A", "B", "2024")
    assert tags.chapters == CHAPTERS
    assert choose_tags(media, ConversionOptions(chapters=False), "x.mp4").chapters == ()


def test_a_trim_keeps_the_chapters_inside_shifted_and_cut() -> None:
    assert trimmed(CHAPTERS, 5, 25) == (
        Chapter(0, 5, "One"),
        Chapter(5, 15, "Two"),
        Chapter(15, 20, None),
    )
    assert trimmed(CHAPTERS, 10, 20) == (Chapter(0, 10, "Two"),)
    assert trimmed(CHAPTERS, 12, None) == (Chapter(0, 8, "Two"), Chapter(8, 18, None))
    assert trimmed(CHAPTERS, None, None) == CHAPTERS


def test_chapter_times_past_what_id3_holds_are_brought_within_it(tmp_path: Path) -> None:
    mp3 = tmp_path / "a.mp3"
    mp3.write_bytes(b"")
    crafted = (Chapter(-5.0, 1.0, "before"), Chapter(1.0, 5_000_000.0, "ages"))
    write_tags(mp3, Tags("t", None, None, None, crafted))
    times = [(f.start_time, f.end_time) for f in ID3(mp3).getall("CHAP")]
    assert sorted(times) == [(0, 1000), (1000, 0xFFFFFFFE)]
