"""The second way to analyse a file: what the converter's own ffmpeg reports of its input.

PyAV in a sandbox (``probe``) is the first way: fast, and exact about where the data ends. When
its child dies on a file (a signal, a limit: PyAV 17.0 dies on MPEG-PS with MP2 audio, 17.1 to
18.1 on channels in an order of their own, as some recorders write), the file is read again by
the ffmpeg that would convert it, hardened like every run (``ffmpeg.run``), and the facts are
taken from the report it prints of its input (``-loglevel info``): the same JSON facts as
``probe``'s, but for where the data ends, which is left unknown (no ``truncated`` check). A file
that ffmpeg can convert, it can report.

The report is text, and ffmpeg prints metadata keys as they are: a crafted key holding line
breaks can write lines that look like the report's own (a shorter duration, another layout).
What that can gain is bounded, because nothing trusts these facts alone: every run is hardened
and limited (``ffmpeg.run``), the output is cut at the length limit and its size bound whatever
the facts say, and a file reaches this path only when PyAV has died on it. Where the data ends is
not looked for here, so a file cut off in transfer converts to what it holds instead of failing
``truncated``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from video2mp3.converter.channels import channel_count
from video2mp3.converter.ffmpeg import hardened_input, run
from video2mp3.converter.probe import MAX_CHAPTERS

_INPUT = re.compile(r"^Input #0, (?P<format>[^ ]+), from ")
_DURATION = re.compile(r"^  Duration: (?:(?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)|N/A)")
_STREAM = re.compile(
    r"^  Stream #0:(?P<index>\d+)(?:\[\w+\])?(?:\((?P<language>\w+)\))?"
    r": (?P<kind>\w+): (?P<rest>.*)"
)
_CHAPTER = re.compile(r"^    Chapter #0:\d+: start (?P<start>-?[\d.]+), end (?P<end>-?[\d.]+)")
_TAG = re.compile(r"^(?P<indent> +)(?P<key>\S[^:]*?) *: (?P<value>.*)")
_AUDIO = re.compile(r"^(?P<codec>[\w-]+).*?, (?P<rate>\d+) Hz, (?P<layout>[^,]+)")


def report_facts(ffmpeg: str, path: Path, deadline: Callable[[], float]) -> dict[str, Any]:
    """The facts of ``path`` (``probe.probe``'s JSON) from ffmpeg's report of it; ``MediaError``
    if ffmpeg cannot read it, ``{"error": ...}`` when it has no audio."""
    args = hardened_input(ffmpeg, path, loglevel="info")
    ran = run([*args, "-t", "0", "-c", "copy", "-f", "null", "-"],
              deadline=deadline, file_bytes=0)  # fmt: skip
    return parse(ran.stderr, functools.partial(channel_count, ffmpeg))


def parse(report: str, channels: Callable[[str], int]) -> dict[str, Any]:
    """The facts in the input part of an ffmpeg report; ``channels`` counts a layout's."""
    facts: dict[str, Any] = {"format": None, "duration": None, "audio": [], "video": [],
                             "attached_pictures": [], "title": None, "chapters": [],
                             "data_end": None}  # fmt: skip
    section = ""  # whose metadata the indented lines are: "input", "chapter" or "stream"
    for line in _input_lines(report):
        if match := _INPUT.match(line):
            facts["format"] = match["format"]
        elif line == "  Metadata:":
            section = "input"
        elif match := _DURATION.match(line):
            if match["h"] is not None:
                facts["duration"] = (
                    int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])
                )
        elif match := _CHAPTER.match(line):
            section = "chapter"
            if len(facts["chapters"]) < MAX_CHAPTERS:
                facts["chapters"].append({"start": float(match["start"]),
                                          "end": float(match["end"]), "title": None})  # fmt: skip
        elif match := _STREAM.match(line):
            section = "stream"
            _stream(facts, match, channels)
        elif (match := _TAG.match(line)) and match["key"].lower() == "title":
            if section == "input" and len(match["indent"]) == 4:
                facts["title"] = match["value"]
            elif section == "chapter" and len(match["indent"]) == 8 and facts["chapters"]:
                facts["chapters"][-1]["title"] = match["value"]
    if facts["format"] is None:
        raise ValueError("not an ffmpeg report of an input")
    if not facts["audio"]:
        return {"error": {"code": "no_audio", "message": "the file has no audio stream"}}
    return facts


def _stream(facts: dict[str, Any], match: re.Match[str], channels: Callable[[str], int]) -> None:
    index, rest = int(match["index"]), match["rest"]
    if match["kind"] == "Video":
        facts["attached_pictures" if "(attached pic)" in rest else "video"].append(index)
    elif match["kind"] == "Audio" and (audio := _AUDIO.match(rest)):
        facts["audio"].append({
            "index": index,
            "codec": audio["codec"],
            "channels": channels(audio["layout"].strip()),
            "layout": audio["layout"].strip(),
            "sample_rate": int(audio["rate"]),
            "language": match["language"],
            "default": "(default)" in rest,
            "duration": None,
        })  # fmt: skip


def _input_lines(report: str) -> list[str]:
    """The report's lines about the input: from ``Input #0`` to the first about the output,
    without the log lines of ffmpeg's parts (``[mov @ 0x...] ...``) that may come between."""
    lines = []
    for line in report.splitlines():
        if line.startswith("Input #0"):
            lines = [line]
        elif line.startswith(("Output #", "Stream mapping:")):
            break
        elif lines and line.startswith(" "):
            lines.append(line)
    return lines
