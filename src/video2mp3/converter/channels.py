"""Channel layouts as ffmpeg describes them: how many channels one has, and how to hand ffmpeg's
resampler channels that come in an order of their own.

ffmpeg's resampler, which downmixes to stereo, refuses some layouts that valid files carry:
channels in an order of their own (``8 channels (FL+FR+FC+LFE+SL+SR+BL+BR)`` in a MOV: ffmpeg
7.0 refuses it), ambisonic sound (every version), and many channels with no names (5.1 refuses
10, 12 and 14). ``for_resampler`` gives the filter that makes such a layout one it takes, before
anything downmixes, measures or resamples it. Both functions read what the converter's ffmpeg
knows (``-layouts``): its channel names in its order, its standard layouts.
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


def for_resampler(ffmpeg: str, layout: str | None) -> list[str]:
    """The filter that turns ``layout`` into one that ffmpeg's resampler can downmix, or
    nothing when it can already:

    - channels in an order of their own that ffmpeg names: each moved, by name, to its place;
    - ambisonic (B-format, as Opus and Matroska carry it): decoded to stereo by two virtual
      cardioids facing left and right (W and Y, the first of each order's channels), with any
      head-locked stereo pair that follows it added as it is;
    - N channels with no names (a container that stores no layout): the standard layout of N
      channels, as newer ffmpeg guesses itself; where there is none (ffmpeg 5.1 has none of 10,
      12 or 14), the even channels to the left and the odd ones to the right.
    """
    layout = layout or ""
    if match := _OWN_ORDER.fullmatch(layout):
        return _native_order(ffmpeg, match["names"].split("+"))
    if match := _AMBISONIC.fullmatch(layout):
        return [_ambisonic_to_stereo((int(match["order"]) + 1) ** 2, match["extra"])]
    words = layout.split()
    if len(words) == 2 and words[0].isdigit() and words[1] == "channels" and int(words[0]) > 2:
        count = int(words[0])
        known = [name for name, size in _listing(ffmpeg)[1].items() if size == count]
        if known:
            return [f"channelmap=channel_layout={known[0]}"]
        left = "+".join(f"c{n}" for n in range(0, count, 2))
        right = "+".join(f"c{n}" for n in range(1, count, 2))
        return [f"pan=stereo|c0<{left}|c1<{right}"]  # "<": each side's sum kept from clipping
    return []


def own_order(layout: str | None) -> bool:
    """Whether ``layout`` lists its channels in an order of its own, which Matroska (the copy
    that segments are encoded from) cannot keep."""
    return _OWN_ORDER.fullmatch(layout or "") is not None


def _native_order(ffmpeg: str, names: list[str]) -> list[str]:
    order = _listing(ffmpeg)[0]
    if len(set(names)) != len(names) or not set(names) <= set(order):
        return []  # channels it cannot place: left as they are
    native = sorted(names, key=order.index)
    if native == names:
        return []
    moves = "|".join(f"{name}-{name}" for name in names)
    return [f"channelmap=map={moves}:channel_layout={'+'.join(native)}"]


def _ambisonic_to_stereo(ambisonic: int, extra: str | None) -> str:
    left, right = "0.5*c0+0.5*c1", "0.5*c0-0.5*c1"  # ACN order: W, Y (left), Z, X
    if extra == "stereo":
        left, right = f"{left}+c{ambisonic}", f"{right}+c{ambisonic + 1}"
    return f"pan=stereo|c0={left}|c1={right}"


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
