"""The ffmpeg command line that writes the MP3: one function per concern.

Input (hardened, with the trim's start as a seek), stream choice, encoder (stream copy when
nothing needs a re-encode), channels and sample rate, loudness filter, and an output bounded in
duration and size that carries no metadata at all: tags, cover and chapters are written
afterwards from what we chose (``tags``), so nothing of the source's metadata (GPS location,
device, encoder) can leak through.
"""

from __future__ import annotations

from pathlib import Path

from video2mp3.converter.channels import for_resampler
from video2mp3.converter.facts import AudioStream, MediaInfo
from video2mp3.converter.ffmpeg import hardened_input, max_output_bytes, seconds
from video2mp3.converter.loudness import MEASURE_FILTER, gain_filter
from video2mp3.converter.segments import SAMPLE_FORMAT, Pcm
from video2mp3.domain.options import ConversionOptions

MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MPEG2_MAX_KBPS = 160  # below 32 kHz (MPEG-2 and 2.5 layer III) no frame holds more
# The decoder passes PCM on in frames this long: every frame crosses ffmpeg's threads (filter,
# muxer) with a lock handover each, which for AAC's 1024-sample frames costs as much CPU as the
# decoding itself (10 min: 1.05 s of CPU, 0.63 s in 64 Ki-sample frames).
PCM_FRAME_SAMPLES = 65536


def command(
    ffmpeg: str,
    src: Path | None,
    dst: Path,
    info: MediaInfo,
    options: ConversionOptions,
    max_seconds: int,
    gain_db: float | None = None,
) -> list[str]:
    """The ffmpeg command line that writes the MP3 for ``src`` (``None``: the standard input)
    to ``dst``; ``gain_db`` normalises the loudness."""
    stream = info.choose_track(options.track)
    args = hardened_input(ffmpeg, src, seek=options.start)
    args += select(stream)
    if copies(stream, options):
        args += ["-c:a", "copy"]  # already MP3: remux, 15x faster than a transcode
    else:
        args += encoder(options) + layout(stream, options)
        filters = for_resampler(ffmpeg, stream.layout) + gain_filters(gain_db)
        args += ["-af", ",".join(filters)] if filters else []
    return args + output(dst, length(options, max_seconds), max_seconds)


def decode_command(
    ffmpeg: str,
    src: Path | None,
    pcm: Pcm,
    info: MediaInfo,
    options: ConversionOptions,
    max_seconds: int,
    gain_db: float | None = None,
) -> list[str]:
    """The first step of a segmented encode: the audio ``command`` would encode, with every
    filter applied, written as raw PCM in ``pcm``'s rate and channels from ``pcm.start`` on.

    The samples before ``pcm.start`` are decoded all the same and dropped on output (exactly, by
    ffmpeg's output seek), so the rest are a single pass's; a seek on the input would start the
    decoder cold instead. ``ValueError`` with both a start and a trim: ffmpeg then drops a few
    samples too many or too few.
    """
    if pcm.start and options.start:
        raise ValueError("no output seek after an input seek: it is not sample-exact")
    stream = info.choose_track(options.track)
    args = hardened_input(ffmpeg, src, seek=options.start) + select(stream)
    args += ["-ac", str(pcm.channels), "-ar", str(pcm.rate)]
    # Timestamps counted in samples first: the output seek and length then cut at a sample
    # count, whatever the container's clock (MPEG-TS's 90 kHz) or gaps made of them.
    frames = ["asetpts=N/SR/TB", f"asetnsamples=n={PCM_FRAME_SAMPLES}:p=0"]
    args += ["-af", ",".join(for_resampler(ffmpeg, stream.layout) + gain_filters(gain_db) + frames)]
    duration = length(options, max_seconds)
    if pcm.start:
        args += ["-ss", f"{pcm.start / pcm.rate:.6f}"]  # to the sample
        duration -= pcm.start / pcm.rate
    args += ["-t", seconds(duration)]
    return [*args, "-progress", "pipe:1", "-f", SAMPLE_FORMAT, str(pcm.path)]


def extract_command(
    ffmpeg: str, src: Path, dst: Path, info: MediaInfo, options: ConversionOptions
) -> list[str]:
    """The chosen audio stream, copied as it is (no decoding: fast, and a fraction of the
    video's size), for converters that encode parts of it. The trim is left to them, so that it
    cuts samples, not packets.

    AAC goes into MP4, whose edit list carries the encoder's priming samples in every ffmpeg
    (5.1's Matroska muxer drops them: its copy decodes to 1024 samples too many); anything else
    into Matroska, which carries every codec."""
    stream = info.choose_track(options.track)
    container = "mp4" if stream.codec == "aac" else "matroska"
    args = hardened_input(ffmpeg, src) + select(stream)
    return [*args, "-c:a", "copy", "-map_metadata", "-1", "-map_chapters", "-1", "-f", container,
            str(dst)]  # fmt: skip


def loudness_command(
    ffmpeg: str, src: Path, info: MediaInfo, options: ConversionOptions, max_seconds: int
) -> list[str]:
    """The first pass of ``normalize``: measure the audio that ``command`` will convert."""
    stream = info.choose_track(options.track)
    args = hardened_input(ffmpeg, src, seek=options.start, loglevel="info") + select(stream)
    filters = [*for_resampler(ffmpeg, stream.layout), MEASURE_FILTER]
    args += ["-af", ",".join(filters), "-t", seconds(length(options, max_seconds))]
    return [*args, "-progress", "pipe:1", "-f", "null", "-"]


def gain_filters(gain_db: float | None) -> list[str]:
    """The loudness filter, if ``normalize`` asked for one."""
    return [] if gain_db is None else [gain_filter(gain_db)]


def select(stream: AudioStream) -> list[str]:
    """The chosen audio stream only: video, subtitles and data are never decoded."""
    return ["-map", f"0:{stream.index}", "-vn", "-sn", "-dn"]


def copies(stream: AudioStream, options: ConversionOptions) -> bool:
    """Whether the source's MP3 frames can be kept as they are: no option changes the audio."""
    return (
        stream.codec == "mp3"
        and options.quality is None
        and options.bitrate is None
        and options.channels in (None, stream.channels)
        and options.sample_rate in (None, stream.sample_rate)
        and options.start is None
        and options.end is None  # cutting MP3 frames is exact to 26 ms only: re-encode
        and options.normalize is None
    )


def encoder(options: ConversionOptions) -> list[str]:
    """LAME: VBR at the asked (or default) quality, or CBR at the asked bitrate."""
    if options.vbr_quality is None:
        return ["-c:a", "libmp3lame", "-b:a", f"{options.bitrate}k"]
    return ["-c:a", "libmp3lame", "-q:a", str(options.vbr_quality)]


def layout(stream: AudioStream, options: ConversionOptions) -> list[str]:
    """Channels and sample rate, given only where they differ from the source's."""
    args = []
    channels = output_channels(stream, options)
    if channels != stream.channels:
        args += ["-ac", str(channels)]
    rate = output_rate(stream, options)
    if rate != stream.sample_rate:
        args += ["-ar", str(rate)]
    return args


def output_channels(stream: AudioStream, options: ConversionOptions) -> int:
    """The asked channels; by default mono stays mono, and more than 2 are downmixed to stereo."""
    return options.channels or min(stream.channels, 2)


def output_rate(stream: AudioStream, options: ConversionOptions) -> int:
    """The asked rate, else the source's when MP3 can hold it, else the nearest MP3 rate above
    (96 and 88.2 kHz go to 48 and 44.1). A CBR above 160 kbps needs 32 kHz or more."""
    rate = options.sample_rate or _mp3_rate(stream.sample_rate)
    while options.bitrate is not None and options.bitrate > MPEG2_MAX_KBPS and rate < 32000:
        rate *= 2  # 16 -> 32, 22.05 -> 44.1, 24 -> 48 kHz
    return rate


def _mp3_rate(rate: int) -> int:
    if rate in MP3_SAMPLE_RATES:
        return rate
    if rate > MP3_SAMPLE_RATES[-1]:
        return 44100 if rate % 11025 == 0 else 48000
    return next(r for r in MP3_SAMPLE_RATES if r > rate)


def length(options: ConversionOptions, max_seconds: int) -> float:
    """Seconds of audio to write: up to ``end``, never more than the limit."""
    if options.end is None:
        return max_seconds
    return min(options.end - (options.start or 0.0), max_seconds)


def output(dst: Path, duration: float, max_seconds: int) -> list[str]:
    """A bare MP3 (no ID3, no chapters, no source metadata), bounded in duration and size."""
    return [
        *("-map_metadata", "-1", "-map_chapters", "-1", "-id3v2_version", "0"),
        *("-t", seconds(duration), "-fs", str(max_output_bytes(max_seconds))),
        *("-progress", "pipe:1", "-f", "mp3", str(dst)),
    ]
