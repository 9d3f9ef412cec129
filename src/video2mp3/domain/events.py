"""The message contract: one versioned JSON envelope for every event on the bus.

``conversion.*`` events come from converters (the request from the gateway); ``job.finished``
comes from the gateway once a job is settled, and is what the notifier acts on;
``segment.requested`` goes from a converter to every converter, for one long input's segments.

``{"type", "version", "event_id", "job_id", "occurred_at", "correlation_id", "data"}``. Each event
type has a frozen dataclass for its ``data``; decoding ignores unknown fields so that services can
be deployed one at a time.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.webhooks import WebhookTarget
from video2mp3.errors import InvalidEvent, InvalidRequest

VERSION = 1


@dataclass(frozen=True)
class Owner:
    """Who asked for a conversion: enough for the notifier to write to them."""

    id: int
    email: str


@dataclass(frozen=True)
class ConversionRequested:
    """The gateway stored a video, or is storing it (``uploading``: the converter follows the
    blob as it arrives); the converter should convert it."""

    TYPE: ClassVar[str] = "conversion.requested"
    video_fid: str
    owner: Owner
    filename: str
    options: ConversionOptions = field(default_factory=ConversionOptions)
    uploading: bool = False


@dataclass(frozen=True)
class SegmentRequested:
    """A converter spread a long input across converters: encode segment ``index`` of the audio
    it copied (blob ``derived_id("audio", job_id)``), ``bounds`` being every segment's first
    sample (and the end), at ``rate`` Hz and ``channels``, with ``gain_db`` to normalise."""

    TYPE: ClassVar[str] = "segment.requested"
    index: int
    bounds: tuple[int, ...]
    rate: int
    channels: int
    owner: Owner
    filename: str
    options: ConversionOptions = field(default_factory=ConversionOptions)
    gain_db: float | None = None


@dataclass(frozen=True)
class ConversionProgress:
    """The converter is working on the job; ``progress`` is 0..1. Transient."""

    TYPE: ClassVar[str] = "conversion.progress"
    progress: float


@dataclass(frozen=True)
class ConversionSucceeded:
    """The MP3 is stored under ``mp3_fid``."""

    TYPE: ClassVar[str] = "conversion.succeeded"
    mp3_fid: str
    size: int
    duration: float
    owner: Owner
    filename: str


@dataclass(frozen=True)
class ConversionFailed:
    """The conversion cannot succeed; ``code`` is stable, ``message`` is for humans."""

    TYPE: ClassVar[str] = "conversion.failed"
    code: str
    message: str
    retryable: bool
    owner: Owner
    filename: str


@dataclass(frozen=True)
class JobFinished:
    """The gateway settled a job, once: what its owner is told.

    ``status`` is ``succeeded`` (with the MP3's id, size and duration) or ``failed`` (with
    ``error_code`` and ``error_message``); ``expires_at`` says until when it can be fetched.
    """

    TYPE: ClassVar[str] = "job.finished"
    status: str
    owner: Owner
    filename: str
    mp3_fid: str | None = None
    size: int | None = None
    duration: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    expires_at: str | None = None  # ISO 8601: when the job and its MP3 are deleted; None: kept
    webhooks: tuple[WebhookTarget, ...] = ()  # the owner's endpoints to tell


@dataclass(frozen=True)
class WebhookDisabled:
    """The notifier gave up on an endpoint that kept failing; the gateway stops sending to it.
    The envelope's ``job_id`` is the job whose delivery failed last."""

    TYPE: ClassVar[str] = "webhook.disabled"
    webhook_id: str
    reason: str


Data = (
    ConversionRequested
    | SegmentRequested
    | ConversionProgress
    | ConversionSucceeded
    | ConversionFailed
    | JobFinished
    | WebhookDisabled
)
DATA_TYPES: dict[str, type[Data]] = {
    cls.TYPE: cls
    for cls in (
        ConversionRequested,
        SegmentRequested,
        ConversionProgress,
        ConversionSucceeded,
        ConversionFailed,
        JobFinished,
        WebhookDisabled,
    )
}


def _utcnow() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Event:
    """The envelope around one event's ``data``."""

    job_id: str
    data: Data
    correlation_id: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: str = field(default_factory=_utcnow)
    version: int = VERSION

    @property
    def type(self) -> str:
        return self.data.TYPE

    def to_json(self) -> bytes:
        body = dataclasses.asdict(self)
        body["type"] = self.type
        return json.dumps(body, separators=(",", ":"), default=_encode).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Decode an envelope; raise ``InvalidEvent`` if it is not one we understand."""
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise TypeError("the envelope must be a JSON object")
            data_cls = DATA_TYPES[body["type"]]
            return cls(
                job_id=str(body["job_id"]),
                data=_build(data_cls, body["data"]),
                correlation_id=body.get("correlation_id"),
                event_id=str(body["event_id"]),
                occurred_at=str(body["occurred_at"]),
                version=int(body.get("version", VERSION)),
            )
        except InvalidRequest as exc:
            raise InvalidEvent(f"not a video2mp3 event: {exc.message}") from None
        # Anything else decoding a body raises (ValueError, KeyError, TypeError, and past them an
        # overflow or the recursion limit) means the same: a consumer dead-letters it at once,
        # whereas an error escaping the bus's decoding would leave the message never settled.
        except Exception as exc:
            raise InvalidEvent(f"not a video2mp3 event: {exc!r}") from None


def _encode(value: object) -> object:
    if isinstance(value, ConversionOptions):
        return value.to_dict()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _build(cls: type[Any], values: object) -> Any:
    """Instantiate a data class from a dict, dropping unknown keys and building nested owners."""
    if not isinstance(values, dict):
        raise TypeError(f"{cls.__name__} must be a JSON object")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in values.items() if k in known}
    if "owner" in kwargs:
        kwargs["owner"] = _build(Owner, kwargs["owner"])
    if cls is JobFinished:
        targets = kwargs.get("webhooks") or []
        if not isinstance(targets, list):
            raise TypeError("webhooks must be a JSON array")
        kwargs["webhooks"] = tuple(_build(WebhookTarget, target) for target in targets)
    if cls is SegmentRequested:
        kwargs["bounds"] = tuple(int(bound) for bound in kwargs["bounds"])
        kwargs["options"] = ConversionOptions.parse(kwargs.get("options") or {})
    if cls is ConversionRequested:
        # Version 1 events before options existed carried only a bitrate.
        legacy = {"bitrate": values["bitrate_kbps"]} if values.get("bitrate_kbps") else {}
        options = kwargs.get("options") or legacy
        if not isinstance(options, dict):
            raise TypeError("options must be a JSON object")
        kwargs["options"] = ConversionOptions.parse(options)
    return cls(**kwargs)
