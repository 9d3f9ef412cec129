"""What a user can ask of a conversion: one validated, immutable value from request to ffmpeg.

``ConversionOptions`` is the single description of the options: the API, the legacy upload, the
page's form and the CLI's flags are all built from its fields (``describe()``), it is stored with
the job and carried in ``conversion.requested``. Adding an option is a field here plus its use in
the converter. Values arrive as text (form fields, query parameters, flags) or as JSON; both are
accepted, and every bad field is reported at once with a message a person can act on.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from iso639 import Language, LanguageNotFoundError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from video2mp3.errors import InvalidRequest

# The bitrates an MPEG-1 Layer III stream can have.
BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
SAMPLE_RATES = (22050, 44100, 48000)
CHANNELS = (1, 2)
DEFAULT_QUALITY = 2  # LAME VBR -V2: transparent for most listeners, about 190 kbps
TAG_LENGTH = 200
_TIME = re.compile(r"^(?:(?:(\d+):)?([0-5]?\d):([0-5]?\d(?:\.\d+)?)|(\d+(?:\.\d+)?))$")


def parse_time(value: object) -> object:
    """Seconds from ``12.5``, ``"90"``, ``"01:30"`` or ``"1:02:03.250"``; other values as given."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    match = _TIME.match(text)
    if match is None:
        raise ValueError("give seconds (90, 12.5) or [hh:]mm:ss[.ms] (01:30, 1:02:03.250)")
    hours, minutes, seconds, plain = match.groups()
    if plain is not None:
        return float(plain)
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def _printable(text: str) -> str:
    """Tag text without control, line or format characters (they end up in ID3 frames)."""
    return "".join(c for c in text if unicodedata.category(c)[0] not in "CZ" or c == " ").strip()


def tag_text(text: str) -> str | None:
    """``text`` fit for a tag: printable, at most ``TAG_LENGTH`` characters; ``None`` if empty."""
    return _printable(text)[:TAG_LENGTH].strip() or None


def title_from_filename(filename: str) -> str | None:
    """The title an MP3 gets from its upload's name when neither the options nor the source
    give one: the name's last component without its extension, fit for a tag."""
    return tag_text(PurePosixPath(filename.replace("\\", "/")).stem)


def _one_of(allowed: tuple[int, ...]) -> Any:
    """Validation and schema for an integer (given as a number or as text) among ``allowed``."""

    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return value

    return AfterValidator(check), Field(json_schema_extra={"enum": list(allowed)})


Bitrate = Annotated[int, *_one_of(BITRATES)]
Channels = Annotated[int, *_one_of(CHANNELS)]
SampleRate = Annotated[int, *_one_of(SAMPLE_RATES)]
Seconds = Annotated[Annotated[float, Field(ge=0, le=24 * 3600)] | None, BeforeValidator(parse_time)]
Tag = Annotated[
    Annotated[str, AfterValidator(_printable), Field(min_length=1, max_length=TAG_LENGTH)] | None,
    "tag",
]


class ConversionOptions(BaseModel):
    """The options of one conversion; ``None`` means the default described on each field."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    quality: int | None = Field(
        None, ge=0, le=9, description="LAME VBR quality, 0 (best) to 9; default 2"
    )
    bitrate: Bitrate | None = Field(None, description="constant bitrate in kbps instead of VBR")
    channels: Channels | None = Field(
        None, description="1 or 2; default: mono stays mono, more than 2 is downmixed to stereo"
    )
    sample_rate: SampleRate | None = Field(
        None, description="Hz; default: the source's when MP3 can hold it"
    )
    start: Seconds = Field(None, description="start at, in seconds or [hh:]mm:ss[.ms]")
    end: Seconds = Field(None, description="end at, in seconds or [hh:]mm:ss[.ms]")
    normalize: float | None = Field(
        None, ge=-30, le=-5, description="loudness target in LUFS (EBU R128); default off"
    )
    track: str | None = Field(
        None,
        pattern=r"^(\d{1,2}|[a-z]{2,3})$",
        description="audio stream: an index (0, 1...) or a language code (eng, fr)",
    )
    title: Tag = Field(None, description="default: the source's title, else the file name")
    artist: Tag = Field(None, description="artist tag")
    album: Tag = Field(None, description="album tag")
    year: str | None = Field(
        None, pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$", description="YYYY or YYYY-MM-DD"
    )
    cover: Literal["frame", "source", "none"] | None = Field(
        None,
        description="cover art: a frame of the video, the source's picture, or none;"
        " default: frame for videos, none for audio",
    )
    chapters: bool = Field(True, description="keep the source's chapters as ID3 chapters")

    @field_validator("track", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("track")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not value.isdigit():
            try:
                Language.match(value)
            except LanguageNotFoundError:
                raise ValueError(f"{value!r} is not an ISO 639 language code") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ConversionOptions:
        if self.quality is not None and self.bitrate is not None:
            raise ValueError("give either quality (VBR) or bitrate (CBR), not both")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must come after start")
        return self

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> ConversionOptions:
        """Options from text or JSON values; ``InvalidRequest`` naming every bad field."""
        # An empty form field or flag means "the default".
        given = {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            problems = [_problem(error) for error in exc.errors()]
            raise InvalidRequest("invalid options: " + "; ".join(problems)) from None

    def to_dict(self) -> dict[str, Any]:
        """The options a user chose (defaults left out), as JSON values."""
        return self.model_dump(mode="json", exclude_defaults=True)

    @property
    def vbr_quality(self) -> int | None:
        """The LAME VBR quality to encode with, or ``None`` for constant ``bitrate``."""
        return (
            None
            if self.bitrate is not None
            else DEFAULT_QUALITY
            if self.quality is None
            else self.quality
        )


def _problem(error: Mapping[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "options"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown option"
    return f"{field}: {message}"


def describe() -> dict[str, Any]:
    """The options as a JSON Schema object: what OpenAPI, the page's form and the CLI are built
    from."""
    return ConversionOptions.model_json_schema()


OPTION_NAMES = tuple(ConversionOptions.model_fields)
