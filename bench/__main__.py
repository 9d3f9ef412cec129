"""Benchmarks against bare ffmpeg, every ratio measured in the same run: ``make bench``.

Sections (``BENCH_SECTIONS``, comma-separated; default all), on 720p H.264 videos with pink-noise
AAC of ``BENCH_SECONDS`` (default ``60,600``):

- ``converter``: the converter's whole job over bare ffmpeg on the same file and settings (no
  cover), and the job with the default cover beside it.
- ``copy``: an MP3-audio source remuxed against a bare transcode of it (the longest input).
- ``options``: what the default cover (a still found in the video) and two-pass loudness
  normalisation add to the converter's job (the longest input).
- ``e2e``: upload to ``succeeded`` over HTTP, on ``video2mp3 dev`` and on the distributed
  processes, over cp + bare ffmpeg: the MP4 as made (index at the end: converted after the
  upload), and with its index first (``streamed``: converted while it arrives), also with that
  turned off (``VIDEO2MP3_STREAM_AFTER_BYTES=0``), and both uploading at ``BENCH_UPLOAD_MBPS``
  (default 100) MB/s as over a network. On bare's settings (no cover), like ``converter``.
- ``fanout``: the longest input on the distributed processes, from the end of the upload to
  ``succeeded``, with 1 and with 2 converters of one core each (its segments spread across them),
  and with one converting it alone.
- ``throughput``: 20 short jobs through 1 and 2 converters, counted when the gateway reports
  them done; and the events per second the gateway's tracker applies.
- ``memory``: peaks of the gateway, the converter and ffmpeg with a 1 GiB video in, its MP3 out.
- ``upload``: a 1 GiB multipart body streamed into the blob store in-process: peak RSS growth.
- ``client``: ``video2mp3 convert`` uploading 64 MiB and 1 GiB to ``video2mp3 dev``: its upload
  time against curl's, and its peak RSS (streamed, so it should not grow with the file).
- ``live``: what open pages cost the gateway on gunicorn (``bench/live.py``).
- ``cache``: a conversion cache hit on a ``BENCH_CACHE_MB`` (default 500) MB upload against the
  upload itself, over HTTP on the embedded stack (``bench/cache.py``).

Prints a table and keeps the JSON in ``bench/out/``.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import cache, client, e2e, live, throughput
from bench.media import FFMPEG, bare, faststart, make_video, repeated
from bench.memory import peaks
from bench.stack import distributed, embedded
from bench.upload import upload_rss_growth
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.adapters.bus.inprocess import InProcessBus
from video2mp3.converter.media import Transcoder
from video2mp3.converter.worker import Converter
from video2mp3.domain.events import ConversionRequested, Event, Owner
from video2mp3.domain.options import ConversionOptions

RUNS = 5
SECONDS = [int(s) for s in os.environ.get("BENCH_SECONDS", "60,600").split(",")]
SECTIONS = os.environ.get(
    "BENCH_SECTIONS", "converter,copy,options,e2e,fanout,throughput,memory,upload,live,cache,client"
)
CACHE = Path(os.environ.get("BENCH_CACHE", "bench/out/media"))
UPLOAD_MBPS = int(os.environ.get("BENCH_UPLOAD_MBPS", "100"))
RATE = UPLOAD_MBPS * 1_000_000


def median_times(*works: Callable[[], object]) -> list[float]:
    """The median seconds of each of ``works`` over ``RUNS`` rounds in which they take turns,
    so that a slower spell of a shared machine weighs on each alike."""
    times: list[list[float]] = [[] for _ in works]
    for _ in range(RUNS):
        for work, taken in zip(works, times, strict=True):
            os.sync()  # the last run's files written back now, not during this one
            started = time.perf_counter()
            work()
            taken.append(time.perf_counter() - started)
    return [statistics.median(taken) for taken in times]


def through_converter(
    src: Path, root: Path, options: ConversionOptions | None = None
) -> Callable[[], None]:
    blobs = LocalBlobStore(root / "blobs")
    converter = Converter(
        blobs,
        InProcessBus(),
        # as deployed: every core this process may use, the probe's sandbox started
        Transcoder(FFMPEG, timeout=3600, max_seconds=86400, cores=len(os.sched_getaffinity(0))),
    )
    converter.transcoder.start()
    with src.open("rb") as data:
        video = blobs.put(
            iter(lambda: data.read(1 << 20), b""), filename=src.name, content_type="video/mp4"
        )
    owner = Owner(1, "bench@example.com")
    request = ConversionRequested(video.id, owner, src.name, options or ConversionOptions())
    return lambda: converter.handle(Event("bench", request))


def gibibyte_video(source: Path) -> Path:
    """At least 1 GiB of video, made by repeating ``source`` (stream copy: fast)."""
    return repeated(source, 1 << 30, CACHE / "1gib.mp4")


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    sections = set(SECTIONS.split(","))
    results: dict[str, Any] = {"seconds": SECONDS}
    try:
        measure(sections, results)
    finally:  # what was measured is kept, even if a later section fails
        print_table(results)
        out = Path("bench/out")
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        (out / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))


def measure(sections: set[str], results: dict[str, Any]) -> None:
    videos = {s: make_video(CACHE / f"aac-{s}.mp4", s) for s in SECONDS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "upload" in sections:  # first: a later step's peak would hide it
            results["upload_1GiB"] = upload_rss_growth(root, 1 << 30)
        if "cache" in sections:
            results["cache"] = cache.run()
        for seconds, video in videos.items():
            if "converter" in sections:
                # The same settings as bare ffmpeg: no cover. The default cover (a still found
                # in the video) is work bare ffmpeg does not do; its cost is shown beside.
                same = ConversionOptions(cover="none")
                t_bare, t_ours, t_cover = median_times(
                    lambda v=video: bare(v, root / "bare.mp3"),
                    through_converter(video, root / f"c{seconds}", same),
                    through_converter(video, root / f"d{seconds}"),
                )
                results[f"converter_{seconds}s"] = {
                    "bare_s": round(t_bare, 2),
                    "converter_s": round(t_ours, 2),
                    "ratio": round(t_ours / t_bare, 2),
                    "with_default_cover_s": round(t_cover, 2),
                }
            if "e2e" in sections:
                front, off = faststart(video), {"VIDEO2MP3_STREAM_AFTER_BYTES": "0"}
                after = functools.partial(embedded, env=off)
                e2e_runs = {
                    "dev": e2e.ratio(embedded, video),
                    "dev_streamed": e2e.ratio(embedded, front),
                    "dev_streaming_off": e2e.ratio(after, front),
                    f"dev_{UPLOAD_MBPS}MBps_streamed": e2e.ratio(embedded, front, rate=RATE),
                    f"dev_{UPLOAD_MBPS}MBps_streaming_off": e2e.ratio(after, front, rate=RATE),
                    "distributed": e2e.ratio(distributed, video, converters=1),
                    "distributed_streamed": e2e.ratio(distributed, front, converters=1),
                }
                for name, run in e2e_runs.items():
                    results[f"e2e_{name}_{seconds}s"] = run
        longest = videos[max(SECONDS)]
        if "copy" in sections:
            mp3_video = make_video(CACHE / f"mp3-{max(SECONDS)}.mp4", max(SECONDS), "libmp3lame")
            t_transcode, t_copy = median_times(
                lambda: bare(mp3_video, root / "bare2.mp3"),
                through_converter(mp3_video, root / "copy"),
            )
            results["mp3_source"] = {
                "bare_transcode_s": round(t_transcode, 2),
                "converter_copy_s": round(t_copy, 2),
                "transcode_over_copy": round(t_transcode / t_copy, 1),
            }
        if "options" in sections:
            by_option = {
                "default_cover_frame": None,
                "cover_none": ConversionOptions(cover="none"),
                "normalize_two_passes": ConversionOptions(normalize=-16),
            }
            results["options"] = {
                f"{name}_s": round(median_times(through_converter(longest, root / name, o))[0], 2)
                for name, o in by_option.items()
            }
        if "fanout" in sections:
            alone = e2e.spread(longest, 1, fan_out=False)
            one, two = e2e.spread(longest, 1), e2e.spread(longest, 2)
            results[f"fan_out_{max(SECONDS)}s"] = {
                "one_converter_no_fan_out_s": round(alone, 2),
                "one_converter_s": round(one, 2),
                "two_converters_s": round(two, 2),
                "speedup": round(one / two, 2),
                "speedup_over_no_fan_out": round(alone / two, 2),
            }
        if "throughput" in sections:
            short = make_video(CACHE / "short-20.mp4", 20, size="320x240")
            one, two = throughput.converters(short, 1), throughput.converters(short, 2)
            results["throughput_20_jobs"] = {
                "one_converter_s": one["seconds"],
                "two_converters_s": two["seconds"],
                "speedup": round(one["seconds"] / two["seconds"], 2),
                "gateway_lag_s": max(one["gateway_lag_s"], two["gateway_lag_s"]),
            }
            results["tracker"] = throughput.tracker_capacity()
        if "memory" in sections:
            results["memory_1GiB"] = peaks(gibibyte_video(longest))
        if "client" in sections:
            results["client_upload"] = client.upload(CACHE)
        if "live" in sections:
            results["live_pages"] = live.measure(live.STREAMS)


def print_table(results: dict[str, Any]) -> None:
    rows = [
        (f"{name}.{key}" if isinstance(value, dict) else name, v)
        for name, value in results.items()
        for key, v in (value.items() if isinstance(value, dict) else [("", value)])
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
