"""Channel layouts as ffmpeg describes them: how many channels one has, and how to hand ffmpeg's
resampler channels that come in an order of their own.

A MOV can list its channels in any order (``8 channels (FL+FR+FC+LFE+SL+SR+BL+BR)``); the
resampler of ffmpeg 7.0 refuses such a layout ("Input channel layout ... is not supported"), so
no downmix, loudness measurement or resampling can follow. ``native_order`` gives the filter
that moves each channel, by name, to its place in ffmpeg's own order first. Both read what the
converter's ffmpeg knows (``-layouts``): its channel names in its order, its standard layouts.
"""

from __future__ import annotations

import functools
import re
import subprocess

_AMBISONIC = re.compile(r"ambisonic (?P<order>\d+)(?:\+(?P<extra>.+))?")
_OWN_ORDER = re.compile(r"\d+ channels \((?P<names>[A-Z0-9+]+)\)")


def channel_count(ffmpeg: str, layout: str) -> int:
    """Channels in a layout as ffmpeg prints it: ``stereo``, ``5.1(side)``, ``8 channels``,
    ``8 channels (FL+FR+...)``, ``ambisonic 1``; ``ValueError`` for one it does not know."""
    if (words := layout.split())[0].isdigit() and words[1:2] == ["channels"]:
        return int(words[0])
    if match := _AMBISONIC.fullmatch(layout):
        extra = match["extra"]
        return (int(match["order"]) + 1) ** 2 + (_listing(ffmpeg)[1].get(extra, 0) if extra else 0)
    if (count := _listing(ffmpeg)[1].get(layout)) is None:
        raise ValueError(f"unknown channel layout {layout!r}")
    return count


def native_order(ffmpeg: str, layout: str | None) -> list[str]:
    """The filter that puts the channels of ``layout`` into ffmpeg's order, when they come in
    an order of their own that it names; else nothing to do."""
    if not (match := _OWN_ORDER.fullmatch(layout or "")):
        return []
    names, order = match["names"].split("+"), _listing(ffmpeg)[0]
    if len(set(names)) != len(names) or not set(names) <= set(order):
        return []  # in ffmpeg's order already, or channels it cannot place: left as they are
    native = sorted(names, key=order.index)
    if native == names:
        return []
    moves = "|".join(f"{name}-{name}" for name in names)
    return [f"channelmap=map={moves}:channel_layout={'+'.join(native)}"]


@functools.cache
def _listing(ffmpeg: str) -> tuple[list[str], dict[str, int]]:
    """What ``ffmpeg -layouts`` lists: its channel names in its order, and its standard layouts
    with their channel counts."""
    listing = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-layouts"], capture_output=True,
                             text=True, timeout=30, check=True).stdout  # fmt: skip
    individual, _, standard = listing.partition("Standard channel layouts:")
    rows = [line.split() for line in individual.splitlines()]
    names = [row[0] for row in rows if len(row) >= 2 and row[0].isupper() and row[0] != "NAME"]
    pairs = [row for line in standard.splitlines() if len(row := line.split()) == 2]
    return names, {name: layout.count("+") + 1 for name, layout in pairs if name != "NAME"}
