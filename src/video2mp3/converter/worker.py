"""The converter's message handler: one ``conversion.requested`` in, one MP3 and one event out.

The job is marked ``processing`` (a transient progress event), the video is read where it lies
when the blob store keeps files, else copied to a private temporary directory (ffmpeg needs a
seekable file for moov-at-end MP4), probed, converted, and the MP3 streamed into the blob
store. A video queued while it uploads is converted as it arrives (``source``), and nothing is
stored unless its upload completed. Only then is ``conversion.succeeded`` published; the bus
acks the request after this handler returns. Bad media ends as ``conversion.failed`` with a
stable code; an unreachable dependency raises, so the message is redelivered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter, Histogram

from video2mp3.converter.exchange import mp3_blob_id, publish_progress, read_blob, store_file
from video2mp3.converter.facts import MediaInfo
from video2mp3.converter.fanout import publish_segments
from video2mp3.converter.media import Transcoder
from video2mp3.converter.source import HEAD_BYTES, Arriving, Source
from video2mp3.converter.workspace import workspace
from video2mp3.domain.events import (
    ConversionFailed,
    ConversionRequested,
    ConversionSucceeded,
    Event,
    SegmentRequested,
)
from video2mp3.domain.jobs import mp3_filename
from video2mp3.errors import (
    BlobNotFound,
    MediaError,
    Unavailable,
    Video2mp3Error,
)
from video2mp3.ports.blobs import BlobStore
from video2mp3.ports.bus import DELIVERY_LIMIT, Bus

log = logging.getLogger(__name__)

CONVERSIONS = Counter("video2mp3_conversions_total", "Finished jobs by outcome", ["outcome"])
FFMPEG_SECONDS = Histogram(
    "video2mp3_ffmpeg_seconds", "Wall time of ffmpeg per job", buckets=(1, 5, 15, 60, 300, 1200)
)
PROGRESS_INTERVAL = 1.0  # seconds between progress events


class Converter:
    def __init__(self, blobs: BlobStore, bus: Bus, transcoder: Transcoder) -> None:
        self.blobs = blobs
        self.bus = bus
        self.transcoder = transcoder
        # Outcomes whose publishing failed while the broker was away, by request event id: the
        # retry in place publishes the same outcome instead of converting (and storing) again.
        self._unpublished: dict[str, ConversionSucceeded | ConversionFailed] = {}

    def handle(self, event: Event) -> None:
        request = event.data
        if not isinstance(request, ConversionRequested):
            return
        outcome = self._unpublished.pop(event.event_id, None) or self._outcome(event, request)
        if outcome is None:  # spread across converters: they finish the job
            return
        try:
            self.bus.publish(Event(event.job_id, outcome, correlation_id=event.correlation_id))
        except Unavailable:
            # The MP3 stays either way: a retry elsewhere finds it under the job's id, and the
            # orphan collector removes it if no job ever records it.
            self._unpublished[event.event_id] = outcome
            raise
        CONVERSIONS.labels(getattr(outcome, "code", "succeeded")).inc()

    def _outcome(
        self, event: Event, request: ConversionRequested
    ) -> ConversionSucceeded | ConversionFailed | None:
        publish_progress(self.bus, event, 0.0)
        try:
            return self._convert(event, request)
        except Unavailable:
            raise
        except Video2mp3Error as exc:
            log.warning("conversion failed: %s", exc.message, extra={"code": exc.code})
            return ConversionFailed(
                code=exc.code,
                message=exc.message,
                retryable=exc.retryable,
                owner=request.owner,
                filename=request.filename,
            )

    def give_up(self, event: Event, error: Exception) -> None:
        """After the last failed try (of the job, or of one of its segments), report the job
        failed so that it does not stay pending."""
        request = event.data
        if not isinstance(request, ConversionRequested | SegmentRequested):
            return
        known = error if isinstance(error, Video2mp3Error) else None
        failed = ConversionFailed(
            code=known.code if known else "internal_error",
            message=f"the conversion failed {DELIVERY_LIMIT} times; last: "
            + (known.message if known else "an internal error"),
            retryable=True,
            owner=request.owner,
            filename=request.filename,
        )
        self.bus.publish(Event(event.job_id, failed, correlation_id=event.correlation_id))
        CONVERSIONS.labels(failed.code).inc()

    def _convert(self, event: Event, request: ConversionRequested) -> ConversionSucceeded | None:
        """The MP3, stored; ``None`` when the input was spread across converters instead."""
        with workspace() as tmp, self._source(request, Path(tmp, "input")) as src:
            dst = Path(tmp, "output.mp3")
            info = self._probe(src)
            slots = self.bus.consumers("segments") if self.transcoder.fan_out_after else 0
            spread = self.transcoder.fan_out(src, Path(tmp), info, request.options,
                                             request.filename, slots)  # fmt: skip
            if spread is not None:
                publish_segments(self.blobs, self.bus, event, request, spread)
                return None
            started = time.monotonic()
            try:
                written = self.transcoder.convert(
                    src,
                    dst,
                    info,
                    request.options,
                    _throttled(lambda p: publish_progress(self.bus, event, p)),
                    filename=request.filename,
                )
            except Video2mp3Error:
                src.check()  # a failed upload is why ffmpeg failed
                raise
            elapsed = time.monotonic() - started
            FFMPEG_SECONDS.observe(elapsed)
            codec = info.choose_track(request.options.track).codec
            log.info("converted", extra={"seconds": round(elapsed, 2), "codec": codec})
            # Nothing is kept unless the upload completed (ffmpeg may stop before its end).
            src.whole.wait()
            src.check()
            if request.uploading:  # what its head could not tell: is the file cut short?
                info = self.transcoder.probe(src.path)
                self.transcoder.check(info, request.options)
            duration = _converted_seconds(written, trimmed=request.options.start is not None)
            _check_length(info.duration, duration, self.transcoder.max_seconds)
            # One id per job: a retry after a crash between storing and publishing finds the MP3
            # already there instead of storing a second one.
            name = mp3_filename(request.filename)
            stored = store_file(self.blobs, dst, mp3_blob_id(event.job_id), name, "audio/mpeg")
        return ConversionSucceeded(
            mp3_fid=stored.id,
            size=stored.size,
            duration=round(duration, 3),
            owner=request.owner,
            filename=request.filename,
        )

    def _source(self, request: ConversionRequested, copy: Path) -> Source:
        """The video as a local file: still arriving (followed), where it lies, or a copy."""
        if request.uploading:
            return Arriving(self.blobs, request.video_fid, copy)
        try:
            return Source(read_blob(self.blobs, request.video_fid, copy))
        except BlobNotFound:
            raise BlobNotFound("the uploaded video is gone", code="video_missing") from None

    def _probe(self, src: Source) -> MediaInfo:
        """What the video holds: told by its head while the rest is still arriving, so that the
        conversion need not wait for it; else (or if the head does not tell) by the whole."""
        if (head := src.head(HEAD_BYTES)) is not None:
            try:
                return self.transcoder.probe(head, whole=False)
            except MediaError as exc:
                log.info("the head of the upload did not tell: waiting for it all",
                         extra={"why": exc.message})  # fmt: skip
        src.whole.wait()
        src.check()
        return self.transcoder.probe(src.path)


def _converted_seconds(duration: float, *, trimmed: bool) -> float:
    """The MP3's length, as ffmpeg wrote it. An MP3 without a single audio frame is the input's
    doing: its audio starts after ``start`` (audio shorter than the video), or none of it could
    be decoded."""
    if duration > 0:
        return duration
    if trimmed:
        raise MediaError("there is no audio after the start you chose", code="invalid_trim")
    raise MediaError("no audio could be decoded from the file", code="no_audio")


def _check_length(announced: float | None, converted: float, max_seconds: int) -> None:
    """Audio of unknown length is cut at the limit by ffmpeg, which does not call that an error;
    so is audio whose file announces less than it holds (a crafted header, say).

    (A cut-off upload is refused before converting: ``MediaInfo.truncated``.)
    """
    understated = announced is None or announced < converted - 1.0
    if understated and converted >= max_seconds - 0.5:
        raise MediaError(
            f"the audio lasts longer than the limit of {max_seconds} s", code="too_long"
        )


def _throttled(report: Callable[[float], None]) -> Callable[[float], None]:
    """``report``, called at most once per ``PROGRESS_INTERVAL``, and only with progress past
    the last told (a job starts at 0: an ffmpeg before 7.0 reports its start as progress)."""
    last, told = float("-inf"), 0.0

    def call(fraction: float) -> None:
        nonlocal last, told
        if fraction > told and time.monotonic() - last >= PROGRESS_INTERVAL:
            last, told = time.monotonic(), fraction
            report(fraction)

    return call
