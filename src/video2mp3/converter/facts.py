"""What a probe tells of a file, and the choices that follow from it alone.

``MediaInfo`` is built from the probe's JSON. ``choose_track`` picks the audio stream a user asked
for (an index among the audio streams, or a language), else the one marked default, else the
first; ``truncated`` tells a file cut off in transfer from one whose audio simply ends early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iso639 import Language, LanguageNotFoundError

from video2mp3.errors import MediaError

GUESSED_DURATION = frozenset({"mp3", "aac"})  # elementary streams: no header states a length


@dataclass(frozen=True)
class AudioStream:
    index: int  # among all the file's streams, as ffmpeg's -map 0:N counts
    codec: str
    channels: int
    sample_rate: int
    language: str | None = None
    default: bool = False
    duration: float | None = None  # as the container's index announces it, when it does
    layout: str | None = None  # as ffmpeg describes it: "stereo", "8 channels (FL+FR+...)"


@dataclass(frozen=True)
class Chapter:
    start: float
    end: float
    title: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    format: str
    duration: float | None
    audio: tuple[AudioStream, ...]
    video: tuple[int, ...] = ()  # moving pictures, by stream index
    attached_pictures: tuple[int, ...] = ()  # cover art carried by the source
    title: str | None = None
    chapters: tuple[Chapter, ...] = field(default_factory=tuple)
    data_end: float | None = None  # where the last packet of any stream ends

    @classmethod
    def from_json(cls, facts: dict[str, Any]) -> MediaInfo:
        return cls(
            format=facts["format"],
            duration=facts["duration"],
            audio=tuple(AudioStream(**stream) for stream in facts["audio"]),
            video=tuple(facts["video"]),
            attached_pictures=tuple(facts["attached_pictures"]),
            title=facts["title"],
            chapters=tuple(Chapter(**chapter) for chapter in facts["chapters"]),
            data_end=facts["data_end"],
        )

    def choose_track(self, track: str | None) -> AudioStream:
        """The audio stream ``track`` names (an index or a language code); by default the one
        marked default, else the first. ``MediaError`` (``no_such_track``) if none matches."""
        if track is None:
            return next((s for s in self.audio if s.default), self.audio[0])
        if track.isdigit():
            if int(track) < len(self.audio):
                return self.audio[int(track)]
        else:
            wanted = _language_codes(track)
            for stream in self.audio:
                if stream.language and _language_codes(stream.language) & wanted:
                    return stream
        tracks = ", ".join(f"{n}: {s.language or 'no language'}" for n, s in enumerate(self.audio))
        raise MediaError(
            f"no audio track {track!r} in this file; it has {tracks}", code="no_such_track"
        )

    @property
    def truncated(self) -> bool:
        """Whether the data ends well before the duration the container announces.

        A cut-off upload keeps its header (MP4 index, Matroska or WAV header) but loses the
        packets at the end, so every stream stops early. Audio that ends before the video is not
        that: the video's packets still reach the announced end, so the file is whole and all of
        its audio is converted. Bare MP3 and AAC streams announce nothing: their duration may be
        guessed from the first frames' bitrate (a VBR MP3 that starts silent is "18 s" long for 6 s
        of audio), so they are converted to all the audio there is.
        """
        if self.format in GUESSED_DURATION or self.duration is None or self.data_end is None:
            return False
        return self.data_end < self.duration - max(0.5, 0.02 * self.duration)


def _language_codes(code: str) -> set[str]:
    """Every spelling of a language (``fr``, ``fre``, ``fra``), or ``code`` itself if unknown."""
    try:
        language = Language.match(code.lower())
    except LanguageNotFoundError:
        return {code.lower()}
    codes = {language.part1, language.part2b, language.part2t, language.part3}
    return {c for c in codes if c}
