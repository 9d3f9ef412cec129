"""Probe a media file with PyAV under whitelists; run as ``python -m video2mp3.converter.probe``.

Runs in its own process (``media.probe`` starts it) so that a demuxer crash on a crafted file
ends the probe, not the worker. Prints one JSON object: the facts (every audio stream, whether
there is a picture to make a cover of, the title tag, the chapters, and where the data really
ends), or ``{"error": {...}}``. Nothing is decoded: streams are read from the headers, and only
the last seconds of packets are demuxed.
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
MAX_CHAPTERS = 500  # ID3 has no limit; a crafted file could have millions
TAIL_SECONDS = 10  # how much of the end is demuxed to find where the data stops


def probe(path: str, whole: bool = True) -> dict[str, Any]:
    """The facts of the file at ``path``; of only its head when not ``whole`` (an upload still
    arriving): where its data ends is then not looked for."""
    import av  # imported here: only the probe process loads libav*

    try:
        with av.open(path, options=PROBE_OPTIONS) as container:
            if not container.streams.audio:
                return _error("no_audio", "the file has no audio stream")
            duration = container.duration / 1_000_000 if container.duration else None
            return {
                "format": container.format.name,
                "duration": duration,
                "audio": [_audio(stream) for stream in container.streams.audio],
                "video": _pictures(container, attached=False),
                "attached_pictures": _pictures(container, attached=True),
                "title": container.metadata.get("title"),
                "chapters": _chapters(container),
                "data_end": _data_end(container, duration) if whole else None,
            }
    except av.error.FFmpegError as exc:
        return _error("invalid_media", f"not a video or audio file we can read ({exc.strerror})")
    except Exception:  # MemoryError and the like: a crafted file can trip anything in libav
        return _error("invalid_media", "not a video or audio file we can read")


def _audio(stream: Any) -> dict[str, Any]:
    ctx = stream.codec_context
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    return {
        "index": stream.index,
        "codec": ctx.codec.canonical_name,
        "channels": ctx.channels,
        "layout": ctx.layout.name,
        "sample_rate": ctx.sample_rate,
        "language": stream.language,
        "default": bool(stream.disposition & stream.disposition.default),
        "duration": duration,
    }


def _pictures(container: Any, *, attached: bool) -> list[int]:
    """Indexes of the video streams: moving pictures, or pictures attached as cover art."""
    return [
        s.index
        for s in container.streams.video
        if bool(s.disposition & s.disposition.attached_pic) == attached
    ]


def _chapters(container: Any) -> list[dict[str, Any]]:
    chapters = []
    for chapter in container.chapters()[:MAX_CHAPTERS]:
        base = chapter["time_base"]
        chapters.append(
            {
                "start": float(chapter["start"] * base),
                "end": float(chapter["end"] * base),
                "title": chapter["metadata"].get("title"),
            }
        )
    return chapters


def _data_end(container: Any, duration: float | None) -> float | None:
    """Where the last packet of any stream ends, in seconds.

    A file cut off in transfer ends before the duration its header or index announces; one whose
    audio merely stops early still has video packets up to that duration. Only the tail is read:
    a seek to a few seconds before the announced end, then packets to the end of the file.
    """
    if duration is None:
        return None
    if duration > TAIL_SECONDS:
        container.seek(int((duration - TAIL_SECONDS) * 1_000_000), backward=True)
    end = None
    for packet in container.demux():
        if packet.pts is not None and packet.time_base is not None:
            stop = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = stop if end is None else max(end, stop)
    start = container.start_time / 1_000_000 if container.start_time else 0.0
    return None if end is None else end - start


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


if __name__ == "__main__":
    json.dump(probe(sys.argv[1]), sys.stdout)
