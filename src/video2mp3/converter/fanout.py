"""One long input across converters: segment tasks on the bus, a part blob each, one merge.

The converter that takes a long input's ``conversion.requested`` copies its audio stream to a
small blob, writes the tag alone to another, and publishes one ``segment.requested`` per segment
(``publish_segments``), as many as there are consumers of segments; then it acks, so that no
consumer slot waits on other converters. Every converter consumes segments, one per core
(``SegmentEncoder``): it encodes its segment from the audio blob and stores the frames as the
part blob ``part_blob_id(job, k)``. Then it looks whether every part is there; if so it joins
them (``segments.join``), tags the MP3, stores it, publishes ``conversion.succeeded`` and only
then deletes the audio. Each worker stores before it looks, so at least one sees every part.

The audio blob is the job's state: while it exists the job is being encoded; once it is gone
(merged, or failed by a media error) any delivery of the job's segments deletes the parts and
the tag that are left (a part stored late included) and does nothing else. Retries stay per
segment: a redelivered task whose part exists goes straight to the look. Two workers that store
the last parts at once may both merge: each stores its MP3 under an id of its own segment
(``merged_blob_id``; two writers of one GridFS id at once could mix their chunks), so a retry
of one merge finds its MP3 again. The gateway keeps the MP3 of the first ``succeeded`` it
applies and deletes the other (``track``); its ``job.finished``, hence the email, goes once.
What a crash leaves behind no job references: the gateway's orphan collector takes it after its
grace period, far beyond a running job's life (the sweep fails stalled jobs first).
"""

from __future__ import annotations

import logging
from pathlib import Path

from video2mp3.converter import mp3
from video2mp3.converter.command import decode_command, encoder
from video2mp3.converter.decoding import encode_segment, while_decoding
from video2mp3.converter.exchange import (
    audio_blob_id,
    blob_exists,
    merged_blob_id,
    part_blob_id,
    publish_progress,
    read_blob,
    store_file,
    tag_blob_id,
)
from video2mp3.converter.ffmpeg import within
from video2mp3.converter.media import Spread, Transcoder
from video2mp3.converter.segments import Pcm, join, pieces, segment
from video2mp3.converter.tags import copy_tag
from video2mp3.converter.workspace import workspace
from video2mp3.domain.events import (
    ConversionFailed,
    ConversionRequested,
    ConversionSucceeded,
    Event,
    SegmentRequested,
)
from video2mp3.domain.jobs import mp3_filename
from video2mp3.errors import BlobNotFound, MediaError, Unavailable, Video2mp3Error
from video2mp3.ports.blobs import BlobStore
from video2mp3.ports.bus import Bus

log = logging.getLogger(__name__)


def publish_segments(
    blobs: BlobStore, bus: Bus, event: Event, request: ConversionRequested, spread: Spread
) -> None:
    """Store the spread input's audio and tag, then ask for each of its segments."""
    job = event.job_id
    for path, blob_id in ((spread.audio, audio_blob_id(job)), (spread.tag, tag_blob_id(job))):
        store_file(blobs, path, blob_id, path.name, "application/octet-stream")
    # The last segments first: they decode the most audio before theirs, so they take longest.
    for index in reversed(range(len(spread.bounds) - 1)):
        task = SegmentRequested(
            index, spread.bounds, spread.rate, spread.channels, request.owner, request.filename,
            request.options, spread.gain_db,
        )  # fmt: skip
        bus.publish(Event(job, task, correlation_id=event.correlation_id))
    log.info("spread across converters", extra={"segments": len(spread.bounds) - 1})


class SegmentEncoder:
    """The handler of ``segment.requested``: encode one part, merge when all are there."""

    def __init__(self, blobs: BlobStore, bus: Bus, transcoder: Transcoder) -> None:
        self.blobs, self.bus, self.transcoder = blobs, bus, transcoder

    def handle(self, event: Event) -> None:
        task = event.data
        if not isinstance(task, SegmentRequested):
            return
        job = event.job_id
        try:
            if not blob_exists(self.blobs, part_blob_id(job, task.index)):
                self._encode(job, task)
            self._merge_when_complete(event, task)
        except BlobNotFound:
            log.info("segment of a settled job dropped", extra={"segment": task.index})
        except Unavailable:
            raise
        except Video2mp3Error as exc:
            self._fail(event, task, exc)
        if not blob_exists(self.blobs, audio_blob_id(job)):  # settled: merged or failed
            for blob_id in (tag_blob_id(job), *parts(job, task)):
                self.blobs.delete(blob_id)  # whatever it left, a part stored late included

    def _encode(self, job: str, task: SegmentRequested) -> None:
        with workspace() as tmp:
            audio = read_blob(self.blobs, audio_blob_id(job), Path(tmp, "audio"))
            part = Path(tmp, "part.mp3")
            self._encode_piece(audio, part, task)
            store_file(self.blobs, part, part_blob_id(job, task.index), part.name, "audio/mpeg")

    def _encode_piece(self, audio: Path, dst: Path, task: SegmentRequested) -> None:
        """Encode ``task``'s segment of the copied ``audio`` to the bare MP3 ``dst``: the audio
        is decoded from its start with the filters of a single pass (so the samples are the
        same), and only the segment's bytes reach the encoder. ``MediaError``."""
        media = self.transcoder
        deadline = within(media.timeout)
        piece, options = pieces(task.bounds, task.rate)[task.index], task.options
        if piece.stop is not None:  # decoding stops a second after what this segment needs
            end = (options.start or 0.0) + piece.stop / task.rate + 1.0
            options = options.model_copy(update={"end": min(end, options.end or end)})
        info = media.probe(audio)
        options = options.model_copy(update={"track": None})  # the copy has one stream
        # Only this segment's samples reach the disk (when no trim seeks the input first).
        start = 0 if options.start else piece.first
        pcm = Pcm(dst.with_name("audio.pcm"), task.rate, task.channels, start=start)
        decode = decode_command(media.ffmpeg, audio, pcm, info, options, media.max_seconds,
                                task.gain_db)  # fmt: skip
        job = segment(media.ffmpeg, piece, pcm, encoder(options), dst, task.bounds[-1])
        try:
            while_decoding(
                decode, pcm, deadline, lambda: encode_segment(job, pcm, deadline, media.max_seconds)
            )
            if piece.stop is not None and pcm.start + pcm.samples < piece.stop:
                raise MediaError(
                    f"the audio ends at {(pcm.start + pcm.samples) / pcm.rate:.1f} s,"
                    f" before the {task.bounds[-1] / pcm.rate:.1f} s it announces",
                    code="truncated",
                )
        finally:
            pcm.path.unlink(missing_ok=True)

    def _merge_when_complete(self, event: Event, task: SegmentRequested) -> None:
        done = sum(blob_exists(self.blobs, part) for part in parts(event.job_id, task))
        publish_progress(self.bus, event, done / (len(task.bounds) - 1))
        if done == len(task.bounds) - 1:
            succeeded = self._merge(event.job_id, task)
            self.bus.publish(Event(event.job_id, succeeded, correlation_id=event.correlation_id))
            self.blobs.delete(audio_blob_id(event.job_id))  # the job is settled

    def _merge(self, job: str, task: SegmentRequested) -> ConversionSucceeded:
        with workspace() as tmp:
            outputs = [
                read_blob(self.blobs, part, Path(tmp, f"{k}.mp3"))
                for k, part in enumerate(parts(job, task))
            ]
            tag = read_blob(self.blobs, tag_blob_id(job), Path(tmp, "tag.id3"))
            planned = pieces(task.bounds, task.rate)
            last = mp3.samples(outputs[-1])
            if last is None:
                raise MediaError("the last segment has no Xing header")
            samples = planned[-1].first + last[0]
            dst = Path(tmp, "output.mp3")
            join(planned, outputs, samples, task.rate, dst)
            copy_tag(tag, dst)
            name, merged = mp3_filename(task.filename), merged_blob_id(job, task.index)
            stored = store_file(self.blobs, dst, merged, name, "audio/mpeg")
        log.info("merged", extra={"segments": len(outputs)})
        return ConversionSucceeded(stored.id, stored.size, round(samples / task.rate, 3),
                                   task.owner, task.filename)  # fmt: skip

    def _fail(self, event: Event, task: SegmentRequested, error: Video2mp3Error) -> None:
        log.warning("segment failed: %s", error.message, extra={"code": error.code})
        failed = ConversionFailed(error.code, error.message, error.retryable, task.owner,
                                  task.filename)  # fmt: skip
        self.bus.publish(Event(event.job_id, failed, correlation_id=event.correlation_id))
        self.blobs.delete(audio_blob_id(event.job_id))  # settled: its other segments stop


def parts(job: str, task: SegmentRequested) -> list[str]:
    """The part blobs of ``task``'s job, one per segment."""
    return [part_blob_id(job, k) for k in range(len(task.bounds) - 1)]
