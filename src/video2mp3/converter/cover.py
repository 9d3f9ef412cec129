"""The cover art: a still from the video, or the picture the source carries, as a small JPEG.

``cover=frame`` takes the first frame that is not black from about 10% into the (trimmed) audio:
opening titles and fades are skipped, and the search reads at most ``SEARCH_SECONDS`` of video.
``cover=source`` re-encodes the source's attached picture, so that every cover is a JPEG of at
most ``MAX_SIDE`` pixels whatever the source held. The default is a frame for a video and no
cover for audio. This is the one place the converter decodes video, in its own hardened ffmpeg.
"""

from __future__ import annotations

from pathlib import Path

from video2mp3.converter.facts import MediaInfo
from video2mp3.converter.ffmpeg import hardened_input, seconds
from video2mp3.domain.options import ConversionOptions

MAX_SIDE = 600
AT = 0.10  # of the audio's length
SEARCH_SECONDS = 30
# Mean luma above this is not black (limited range: black is 16 of 235).
NOT_BLACK = "signalstats,metadata=mode=select:key=lavfi.signalstats.YAVG:value=24:function=greater"
FIT = (
    f"scale=w='min({MAX_SIDE},iw)':h='min({MAX_SIDE},ih)'"
    ":force_original_aspect_ratio=decrease:force_divisible_by=2"
)


def cover_command(
    ffmpeg: str, src: Path, dst: Path, info: MediaInfo, options: ConversionOptions
) -> list[str] | None:
    """The ffmpeg command that writes the cover to ``dst``, or ``None`` when there is none."""
    choice = options.cover or ("frame" if info.video else "none")
    if choice == "frame" and info.video:
        start = options.start or 0.0
        end = min(options.end or float("inf"), info.duration or 0.0)
        at = start + AT * max(end - start, 0.0)
        args = hardened_input(ffmpeg, src, seek=at)
        args += ["-map", f"0:{info.video[0]}", "-t", seconds(SEARCH_SECONDS)]
        args += ["-vf", f"{NOT_BLACK},{FIT}"]
    elif choice == "source" and info.attached_pictures:
        args = hardened_input(ffmpeg, src)
        args += ["-map", f"0:{info.attached_pictures[0]}", "-vf", FIT]
    else:
        return None
    return [*args, "-an", "-sn", "-dn", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "3",
            "-f", "image2", "-update", "1", str(dst)]  # fmt: skip
