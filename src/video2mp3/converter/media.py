"""The converter's media work: find ffmpeg, probe an input, turn it into a tagged MP3.

Defences, together (DESIGN.md, "media is hostile input"): a separate probe process; every ffmpeg
run hardened by ``ffmpeg.run`` (``-nostdin``, format and protocol whitelists, bounded probing,
a wall-clock timeout, CPU, memory and file-size limits); only the chosen audio stream mapped, so
video is never decoded except for a few frames to find a cover; output bounded in duration and
size; server-chosen file names.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from video2mp3.converter import mp3, segments
from video2mp3.converter.command import (
    command,
    copies,
    decode_command,
    encoder,
    loudness_command,
    output_channels,
    output_rate,
)
from video2mp3.converter.cover import cover_command
from video2mp3.converter.facts import AudioStream, MediaInfo
from video2mp3.converter.ffmpeg import Feed, max_output_bytes, run
from video2mp3.converter.loudness import Loudness, read_measurement
from video2mp3.converter.probing import Prober
from video2mp3.converter.segments import SAMPLE_BYTES, Pcm, Segment
from video2mp3.converter.source import Source
from video2mp3.converter.tags import choose_tags, write_tags
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import MediaError, SettingsError

log = logging.getLogger(__name__)

COVER_BYTES = 4 * 1024 * 1024  # a 600 px JPEG is far smaller
# Inputs at least this long are encoded in segments on several cores: below it, starting the
# extra encoders and the decoding pass cost more than they save.
SEGMENT_AFTER = 60.0
# ... and at most this much decoded audio (about 70 min of 48 kHz stereo), which with the input
# and the MP3 fits the converter's 4 GiB of scratch space; longer audio is encoded in one pass.
SEGMENT_MAX_PCM_BYTES = 1536 * 1024**2


def find_ffmpeg(configured: str | None = None) -> str:
    """``configured``, else ffmpeg on PATH, else the static build shipped by imageio-ffmpeg."""
    if configured:
        return configured
    if found := shutil.which("ffmpeg"):
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise SettingsError(
            "VIDEO2MP3_FFMPEG: no ffmpeg on PATH; install ffmpeg or video2mp3[converter]"
        ) from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


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
        prober: Prober | None = None,
    ) -> None:
        self.ffmpeg = ffmpeg
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.cores = cores  # LAME encodes on one core: longer inputs are split over these
        self.segment_after = segment_after
        self._prober = prober or Prober()

    def probe(self, path: Path, *, whole: bool = True) -> MediaInfo:
        """What ``path`` holds, or only its head (``Prober.probe``)."""
        return self._prober.probe(path, whole=whole)

    def start(self) -> None:
        """Start what each job uses (the probe's sandbox child) now, not in the first job."""
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
        deadline = time.monotonic() + self.timeout  # one budget for every step of the job
        if options.start is not None or options.normalize is not None:
            src.whole.wait()
        loudness = None
        if options.normalize is not None:
            args = loudness_command(self.ffmpeg, src.path, info, options, self.max_seconds)
            measured = run(
                args, timeout=_left(deadline), file_bytes=max_output_bytes(self.max_seconds)
            )
            loudness = read_measurement(measured.stderr)
        job = _Job(src, dst, info, options, loudness, seconds, on_progress, deadline)
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

    def _segments(self, stream: AudioStream, options: ConversionOptions, seconds: float) -> bool:
        """Whether to encode in segments: several cores, an input long enough for two segments,
        room for its PCM."""
        if self.cores < 2 or seconds < self.segment_after or copies(stream, options):
            return False
        rate, channels = output_rate(stream, options), output_channels(stream, options)
        two = len(segments.plan(round(seconds * rate), rate, self.cores)) > 2
        return two and seconds * rate * channels * SAMPLE_BYTES <= SEGMENT_MAX_PCM_BYTES

    def _one_pass(self, job: _Job) -> float | None:
        feed = job.src.feed()
        args = command(self.ffmpeg, None if feed else job.src.path, job.dst, job.info,
                       job.options, self.max_seconds, job.loudness)  # fmt: skip
        return run(
            args,
            timeout=_left(job.deadline),
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
        pcm.path.touch()  # the encoders open it at once; ffmpeg then writes to the same file
        source = job.src.feed()
        decode = decode_command(self.ffmpeg, None if source else job.src.path, pcm, job.info,
                                job.options, self.max_seconds, job.loudness)  # fmt: skip
        pcm_bytes = SEGMENT_MAX_PCM_BYTES + rate * channels * SAMPLE_BYTES  # a second of slack
        encoded: dict[int, float] = {}
        lock = threading.Lock()

        def decoder() -> None:
            try:
                run(decode, timeout=_left(job.deadline), file_bytes=pcm_bytes, stdin=source)
            finally:
                pcm.finished.set()

        def encode_one(segment: Segment, audio: Pcm) -> None:
            def report(fraction: float) -> None:
                with lock:
                    encoded[segment.index] = fraction * segment.seconds
                    job.on_progress(min(sum(encoded.values()) / seconds, 1.0))

            feed = Feed(audio.path, segment.first_byte, segment.byte_count, audio.finished)
            run(segment.args, timeout=_left(job.deadline),
                file_bytes=max_output_bytes(self.max_seconds), on_progress=report,
                duration=segment.seconds, stdin=feed)  # fmt: skip

        with ThreadPoolExecutor(1, thread_name_prefix="decoder") as pool:
            decoding = pool.submit(decoder)
            try:
                count = segments.encode(
                    self.ffmpeg, pcm, job.dst, encoder(job.options), self.cores, encode_one,
                    round(seconds * rate),
                )  # fmt: skip
                samples = pcm.samples
            except (MediaError, segments.ShortAudio) as exc:
                decoding.result()  # a decoder's failure explains the encoders': it is raised
                if not isinstance(exc, segments.ShortAudio):
                    raise
                log.info("shorter audio than announced: one pass", extra={"why": str(exc)})
                return self._one_pass(job)
            finally:
                pcm.finished.wait()
                pcm.path.unlink(missing_ok=True)
            decoding.result()
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
        job.src.whole.wait()  # it seeks
        args = cover_command(self.ffmpeg, job.src.path, jpeg, job.info, job.options)
        if args is None:
            return None
        try:
            run(args, timeout=_left(job.deadline), file_bytes=COVER_BYTES)
        except MediaError as exc:  # a cover is a nicety: the MP3 is kept without one
            log.warning("no cover: %s", exc.message)
            return None
        return jpeg.read_bytes() if jpeg.exists() else None


@dataclass(frozen=True)
class _Job:
    """One conversion's inputs, shared by its steps; ``deadline`` (monotonic) bounds them all."""

    src: Source
    dst: Path
    info: MediaInfo
    options: ConversionOptions
    loudness: Loudness | None
    seconds: float | None
    on_progress: Callable[[float], None]
    deadline: float


def _left(deadline: float) -> int:
    """Whole seconds left before ``deadline``, at least one (ffmpeg then times out at once)."""
    return max(1, int(deadline - time.monotonic()))
