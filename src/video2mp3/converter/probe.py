"""Probe a media file with PyAV under whitelists; run as ``python -m video2mp3.converter.probe``.

Runs in its own process (``media.probe`` starts it) so that a demuxer crash on a crafted file
ends the probe, not the worker. Prints one JSON object: the facts, or ``{"error": {...}}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# Demuxers we accept (short names match ffmpeg's aliases: "mov" is mov/mp4/m4a/3gp). Never hls,
# concat, image2 or anything else that can open other files or URLs.
FORMATS = "mov,matroska,avi,flv,ogg,asf,mpeg,mpegts,wav,mp3,aac,flac"
PROBE_OPTIONS = {
    "format_whitelist": FORMATS,
    "protocol_whitelist": "file",
    "probesize": str(50 * 1024 * 1024),
    "analyzeduration": str(30 * 1_000_000),
}


def probe(path: str) -> dict[str, Any]:
    import av  # imported here: only the probe process loads libav*

    try:
        with av.open(path, options=PROBE_OPTIONS) as container:
            audio = next(iter(container.streams.audio), None)
            if audio is None:
                return _error("no_audio", "the file has no audio stream")
            ctx = audio.codec_context
            duration = None
            if audio.duration is not None and audio.time_base is not None:
                duration = float(audio.duration * audio.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            return {
                "format": container.format.name,
                "codec": ctx.codec.canonical_name,
                "channels": ctx.channels,
                "sample_rate": ctx.sample_rate,
                "duration": duration,
            }
    except av.error.FFmpegError as exc:
        return _error("invalid_media", f"not a video or audio file we can read ({exc.strerror})")
    except Exception:  # MemoryError and the like: a crafted file can trip anything in libav
        return _error("invalid_media", "not a video or audio file we can read")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


if __name__ == "__main__":
    json.dump(probe(sys.argv[1]), sys.stdout)
