"""The converter's media work: probe an input, turn it into a tagged MP3.

Defences, together (DESIGN.md, "media is hostile input"): a separate probe process; every ffmpeg
run hardened by ``ffmpeg.run`` (``-nostdin``, format and protocol whitelists, bounded probing,
a wall-clock timeout, CPU, memory and file-size limits); only the chosen audio stream mapped, so
video is never decoded except for a few frames to find a cover; output bounded in duration and
size; server-chosen file names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from video2mp3.converter import mp3, segments
from video2mp3.converter.channels import own_order
from video2mp3.converter.command import (
    command,
    copies,
    decode_command,
    encoder,
    extract_command,
    loudness_command,
    output_channels,
    output_rate,
)
from video2mp3.converter.cover import cover_command
from video2mp3.converter.decoding import MAX_PCM_BYTES, encode_segment, while_decoding
from video2mp3.converter.facts import AudioStream, MediaInfo
from video2mp3.converter.ffmpeg import DEADLINE_CHECK_SECONDS, max_output_bytes, run
from video2mp3.converter.loudness import gain, read_measurement
from video2mp3.converter.probing import Prober
from video2mp3.converter.segments import MAX_SPREAD, SAMPLE_BYTES, Pcm, Segment, plan
from video2mp3.converter.source import Arriving, Source
from video2mp3.converter.tags import choose_tags, write_tags
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import ConversionTimeout, MediaError

log = logging.getLogger(__name__)

COVER_BYTES = 4 * 1024 * 1024  # a 600 px JPEG is far smaller
# Inputs at least this long are encoded in segments on several cores: below it, starting the
# extra encoders and the decoding pass cost more than they save.
SEGMENT_AFTER = 60.0


class Transcoder:
    """Turns a probed file into a tagged MP3: loudness measured if asked, audio converted,
    cover taken, tag written; each ffmpeg run hardened and bounded (``ffmpeg.run``)."""

    def __init__(
        self,
        ffmpeg: str,
        *,
        timeout: int,
        max_seconds: int,
        cores: int = 1,
        segment_after: float = SEGMENT_AFTER,
        fan_out_after: float | None = None,
        prober: Prober | None = None,
    ) -> None:
        self.ffmpeg = ffmpeg
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.cores = cores  # LAME encodes on one core: longer inputs are split over these
        self.segment_after = segment_after
        self.fan_out_after = fan_out_after  # longer inputs are spread across converters
        self._prober = prober or Prober(ffmpeg)

    def probe(self, path: Path, *, whole: bool = True) -> MediaInfo:
        """What ``path`` holds, or only its head (``Prober.probe``)."""
        return self._prober.probe(path, whole=whole)

    def start(self) -> None:
        """Start what each job uses (the probe's sandbox child) now and wait until it is up, so
        that the first job does not wait for it."""
        self._prober.start()

    def close(self) -> None:
        self._prober.close()

    def convert(
        self,
        src: Source,
        dst: Path,
        info: MediaInfo,
        options: ConversionOptions,
        on_progress: Callable[[float], None],
        filename: str = "",
    ) -> float:
        """Write the MP3 to ``dst`` and return its length in seconds; ``MediaError`` or
        ``ConversionTimeout`` on failure.

        ``filename``, the upload's name, is the title when neither the options nor the source
        give one. A ``src`` still arriving is converted as it grows, unless an option needs to
        seek or to read it twice: then once it is whole.
        """
        seconds = self.check(info, options)
        job = _Job(src, dst, info, options, None, seconds, on_progress, self.timeout)
        if options.start is not None or options.normalize is not None:
            job.wait_whole()
        job = replace(job, gain_db=self._gain(src.path, info, options, job.deadline))
        written: float | None
        # The cover is taken on another core while the audio is encoded.
        with ThreadPoolExecutor(1, thread_name_prefix="cover") as side:
            cover = side.submit(self._cover, job)
            stream = info.choose_track(options.track)
            if seconds is not None and self._segments(stream, options, seconds):
                written = self._segmented(job, seconds)
            else:
                written = self._one_pass(job)
            # ffmpeg's count of written time starts where the audio starts in the source (late
            # in some files); the header counts the samples.
            length = mp3.seconds(dst) or written or 0.0
            write_tags(dst, replace(choose_tags(info, options, filename), cover=cover.result()))
        return length

    def fan_out(
        self,
        src: Source,
        scratch: Path,
        info: MediaInfo,
        options: ConversionOptions,
        filename: str,
        slots: int,
    ) -> Spread | None:
        """Prepare a long input for ``slots`` segments across converters (``fanout``), or
        ``None`` if better converted here (short, or no slots beyond this converter's cores):
        once ``src`` is whole and checked, its audio copied to a Matroska file, its loudness
        measured, its tag written alone, its segments planned. ``MediaError`` as ``convert``."""
        seconds = self.check(info, options)
        stream = info.choose_track(options.track)
        if self.fan_out_after is None or seconds is None or seconds < self.fan_out_after:
            return None
        if slots <= self.cores or not self._fits(stream, options, seconds):
            return None
        if own_order(stream.layout):  # the copy's Matroska would lose the channels' order
            return None
        tag = scratch / "tag.id3"
        job = _Job(src, tag, info, options, None, seconds, lambda _: None, self.timeout)
        job.wait_whole()  # the copy reads it all
        src.check()  # never spread half an upload
        if isinstance(src, Arriving):  # the facts came from its head: the whole may differ
            info = self.probe(src.path)
            seconds = self.check(info, options)
            job = replace(job, info=info, seconds=seconds)
        assert seconds is not None
        rate, channels = output_rate(stream, options), output_channels(stream, options)
        bounds = plan(round(seconds * rate), rate, min(slots, MAX_SPREAD))
        audio = scratch / "audio"  # MP4 or Matroska (``extract_command``)
        try:  # a codec the container cannot carry is converted here
            run(extract_command(self.ffmpeg, src.path, audio, info, options),
                deadline=job.deadline, file_bytes=src.path.stat().st_size)  # fmt: skip
        except MediaError as exc:
            log.info("no fan-out: the audio could not be copied", extra={"why": exc.message})
            return None
        tag.touch()  # mutagen writes into a file that exists
        gain_db = self._gain(src.path, info, options, job.deadline)
        write_tags(tag, replace(choose_tags(info, options, filename), cover=self._cover(job)))
        return Spread(audio, tag, tuple(bounds), rate, channels, gain_db)

    def _gain(
        self,
        src: Path,
        info: MediaInfo,
        options: ConversionOptions,
        deadline: Callable[[], float],
    ) -> float | None:
        """The gain that normalises the loudness, measured once over all of the audio."""
        if options.normalize is None:
            return None
        args = loudness_command(self.ffmpeg, src, info, options, self.max_seconds)
        measured = run(args, deadline=deadline, file_bytes=max_output_bytes(self.max_seconds))
        return gain(options.normalize, read_measurement(measured.stderr))

    def _segments(self, stream: AudioStream, options: ConversionOptions, seconds: float) -> bool:
        """Whether to encode in segments: several cores, two segments' length, room for PCM."""
        if self.cores < 2 or seconds < self.segment_after:
            return False
        rate = output_rate(stream, options)
        two = len(plan(round(seconds * rate), rate, self.cores)) > 2
        return two and self._fits(stream, options, seconds)

    @staticmethod
    def _fits(stream: AudioStream, options: ConversionOptions, seconds: float) -> bool:
        """Whether the input is re-encoded, and its decoded audio fits the scratch space."""
        rate, channels = output_rate(stream, options), output_channels(stream, options)
        pcm_bytes = seconds * rate * channels * SAMPLE_BYTES
        return not copies(stream, options) and pcm_bytes <= MAX_PCM_BYTES

    def _one_pass(self, job: _Job) -> float | None:
        feed = job.src.feed()
        args = command(self.ffmpeg, None if feed else job.src.path, job.dst, job.info,
                       job.options, self.max_seconds, job.gain_db)  # fmt: skip
        return run(
            args,
            deadline=job.deadline,
            file_bytes=max_output_bytes(self.max_seconds),
            on_progress=job.on_progress,
            duration=job.seconds,
            stdin=feed,
        ).written_seconds

    def _segmented(self, job: _Job, seconds: float) -> float | None:
        """Decode once to PCM while segments of it are encoded on ``cores`` cores (``segments``):
        each encoder starts as soon as the decoder has reached its part. Audio that turns out
        shorter than announced is encoded in one pass instead."""
        stream = job.info.choose_track(job.options.track)
        rate, channels = output_rate(stream, job.options), output_channels(stream, job.options)
        pcm = Pcm(job.dst.with_name("audio.pcm"), rate, channels)
        source = job.src.feed()
        decode = decode_command(self.ffmpeg, None if source else job.src.path, pcm, job.info,
                                job.options, self.max_seconds, job.gain_db)  # fmt: skip
        encoded: dict[int, float] = {}
        lock = threading.Lock()

        def encode_one(segment: Segment, audio: Pcm) -> None:
            def report(fraction: float) -> None:
                with lock:
                    encoded[segment.index] = fraction * segment.seconds
                    job.on_progress(min(sum(encoded.values()) / seconds, 1.0))

            encode_segment(segment, audio, job.deadline, self.max_seconds, report)

        def encode_all() -> int:
            return segments.encode(self.ffmpeg, pcm, job.dst, encoder(job.options), self.cores,
                                   encode_one, round(seconds * rate))  # fmt: skip

        try:
            count = while_decoding(decode, pcm, job.deadline, encode_all, stdin=source)
            samples = pcm.samples
        except segments.ShortAudio as exc:
            log.info("shorter audio than announced: one pass", extra={"why": str(exc)})
            return self._one_pass(job)
        finally:
            pcm.path.unlink(missing_ok=True)
        log.info("encoded in segments", extra={"segments": count})
        return samples / rate

    def check(self, info: MediaInfo, options: ConversionOptions) -> float | None:
        """Refuse early what cannot convert well; the seconds of audio to expect, if known."""
        if info.truncated:
            raise MediaError(
                f"the file is truncated: its data ends at {info.data_end:.1f} s"
                f" of the {info.duration:.1f} s it announces",
                code="truncated",
            )
        stream = info.choose_track(options.track)
        total = stream.duration or info.duration
        if total is not None and options.start is not None and options.start >= total:
            raise MediaError(
                f"start ({options.start:g} s) is past the end of the audio ({total:.1f} s)",
                code="invalid_trim",
            )
        seconds = None if total is None else min(total, options.end or total) - (options.start or 0)
        if seconds is not None and seconds > self.max_seconds:
            raise MediaError(
                f"the audio lasts {seconds:.0f} s; the limit is {self.max_seconds} s",
                code="too_long",
            )
        return seconds

    def _cover(self, job: _Job) -> bytes | None:
        """The cover's JPEG, or ``None``: no picture to take, or no frame that is not black."""
        jpeg = job.dst.with_name("cover.jpg")
        try:
            job.wait_whole()  # it seeks
            args = cover_command(self.ffmpeg, job.src.path, jpeg, job.info, job.options)
            if args is None:
                return None
            run(args, deadline=job.deadline, file_bytes=COVER_BYTES)
        except (MediaError, ConversionTimeout) as exc:  # a nicety: the MP3 is kept without one
            log.warning("no cover: %s", exc.message)
            return None
        return jpeg.read_bytes() if jpeg.exists() else None


@dataclass(frozen=True)
class _Job:
    """One conversion's inputs, shared by its steps; ``timeout`` seconds bound them all
    (``deadline``)."""

    src: Source
    dst: Path
    info: MediaInfo
    options: ConversionOptions
    gain_db: float | None
    seconds: float | None
    on_progress: Callable[[float], None]
    timeout: int
    started: float = field(default_factory=time.monotonic)

    def deadline(self) -> float:
        """When the job's time is up, as known now: ``timeout`` after its input was whole (a
        slow upload's time is not the conversion's), or after its start if that came later;
        yet no later than twice ``timeout`` after its start (a trickle must not hold a converter
        for ever)."""
        whole = self.src.whole_at if self.src.whole.is_set() else time.monotonic()
        return min(max(whole, self.started), self.started + self.timeout) + self.timeout

    def wait_whole(self) -> None:
        """Wait until the input is whole; ``ConversionTimeout`` if the job's time runs out."""
        while not self.src.whole.wait(DEADLINE_CHECK_SECONDS):
            if time.monotonic() >= self.deadline():
                raise ConversionTimeout("the upload did not complete within the conversion's time")


@dataclass(frozen=True)
class Spread:
    """A long input ready to be encoded across converters (bounds: ``segments.plan``'s)."""

    audio: Path
    tag: Path
    bounds: tuple[int, ...]
    rate: int
    channels: int
    gain_db: float | None
