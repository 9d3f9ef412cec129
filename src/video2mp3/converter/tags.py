"""The MP3's ID3v2.4 tag (UTF-8), written whole by us with mutagen.

ffmpeg writes a bare MP3 (``command.output``); the tag holds only what is chosen here: title
(the asked one, else the source's title tag, else the file name without its extension), artist,
album, year, the cover as the front picture, and the source's chapters as ``CHAP`` frames under
one ordered ``CTOC``. Nothing else of the source's metadata is ever copied, so a phone video's
location, device or software never reaches the MP3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mutagen.id3 import (
    APIC,
    CHAP,
    CTOC,
    ID3,
    TALB,
    TDRC,
    TIT2,
    TPE1,
    CTOCFlags,
    Encoding,
    PictureType,
)

from video2mp3.converter.facts import Chapter, MediaInfo
from video2mp3.domain.options import ConversionOptions, tag_text, title_from_filename

NO_OFFSET = 0xFFFFFFFF  # CHAP byte offsets unknown: players use the times
MAX_CHAPTER_MS = 0xFFFFFFFE  # about 49 days


@dataclass(frozen=True)
class Tags:
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    year: str | None = None
    chapters: tuple[Chapter, ...] = ()
    cover: bytes | None = None  # JPEG


def choose_tags(info: MediaInfo, options: ConversionOptions, filename: str) -> Tags:
    """The tags for this conversion (without the cover, which is made separately)."""
    title = options.title or tag_text(info.title or "") or title_from_filename(filename)
    chapters = trimmed(info.chapters, options.start, options.end) if options.chapters else ()
    return Tags(title, options.artist, options.album, options.year, chapters)


def trimmed(
    chapters: tuple[Chapter, ...], start: float | None, end: float | None
) -> tuple[Chapter, ...]:
    """The chapters that fall inside ``start``..``end``, cut to it and shifted to start at 0."""
    start = start or 0.0
    kept = []
    for chapter in chapters:
        first, last = max(chapter.start, start), min(chapter.end, end or chapter.end)
        if last > first:
            title = tag_text(chapter.title or "")
            kept.append(Chapter(first - start, last - start, title))
    return tuple(kept)


def write_tags(path: Path, tags: Tags) -> None:
    """Replace any tag in the MP3 at ``path`` with exactly ``tags``, as ID3v2.4 in UTF-8."""
    id3 = ID3()
    for frame, text in ((TIT2, tags.title), (TPE1, tags.artist), (TALB, tags.album)):
        if text:
            id3.add(frame(encoding=Encoding.UTF8, text=[text]))
    if tags.year:
        id3.add(TDRC(encoding=Encoding.UTF8, text=[tags.year]))
    if tags.cover:
        id3.add(
            APIC(
                encoding=Encoding.UTF8,
                mime="image/jpeg",
                type=PictureType.COVER_FRONT,
                desc="",
                data=tags.cover,
            )
        )
    ids = [f"ch{n}" for n in range(len(tags.chapters))]
    for element_id, chapter in zip(ids, tags.chapters, strict=True):
        title = chapter.title or f"Chapter {int(element_id[2:]) + 1}"
        id3.add(
            CHAP(
                element_id=element_id,
                start_time=_milliseconds(chapter.start),
                end_time=_milliseconds(chapter.end),
                start_offset=NO_OFFSET,
                end_offset=NO_OFFSET,
                sub_frames=[TIT2(encoding=Encoding.UTF8, text=[title])],
            )
        )
    if ids:
        id3.add(
            CTOC(
                element_id="toc",
                flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                child_element_ids=ids,
                sub_frames=[TIT2(encoding=Encoding.UTF8, text=["Chapters"])],
            )
        )
    id3.save(path, v2_version=4, v1=0)


def _milliseconds(seconds: float) -> int:
    """A chapter time as ``CHAP`` holds it (32 bits of milliseconds): a crafted source's time
    past that, or before 0, is brought within it rather than failing the job."""
    return min(max(round(seconds * 1000), 0), MAX_CHAPTER_MS)


def copy_tag(source: Path, mp3: Path) -> None:
    """Put the tag that ``write_tags`` wrote into the empty file ``source`` in front of ``mp3``."""
    ID3(source).save(mp3, v2_version=4, v1=0)
