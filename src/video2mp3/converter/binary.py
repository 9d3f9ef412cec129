"""Which ffmpeg the converter runs, and why.

The order: the one ``VIDEO2MP3_FFMPEG`` names, and nothing else (if it is unfit, the converter
refuses to start: an operator who names a binary wants that one, not a silent substitute); else
ffmpeg on ``PATH`` if it is fit; else the pinned static build that ``video2mp3[converter]``
installs (imageio-ffmpeg). ``PATH`` comes before the pinned build on purpose: ffmpeg is the one
program here that parses hostile files, and a distribution's ffmpeg gets that distribution's
security fixes the day they ship, while the pinned build moves only when the project bumps it.

Fit means at least ``MINIMUM`` (5.1, Debian 12's; every filter option used is checked against
it) and every encoder and filter the converter uses, read from the binary itself: a build
without LAME (some distributions ship one) is passed over, not discovered job by job. A version
that is not a release number (a build from git: ``N-112233-g...``) is taken as recent.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from video2mp3.errors import SettingsError

MINIMUM = (5, 1)
ENCODERS = frozenset({"libmp3lame", "mjpeg"})
# Loudness (ebur128, volume), segments (asetpts, asetnsamples), layouts the resampler refuses
# (channelmap, pan: ``channels``), the cover (the rest).
FILTERS = frozenset({"ebur128", "volume", "asetpts", "asetnsamples", "channelmap", "pan",
                     "signalstats", "metadata", "scale"})  # fmt: skip
ASK_TIMEOUT = 30  # seconds for ffmpeg to list what it has
_RELEASE = re.compile(r"n?(\d+)\.(\d+)")


@dataclass(frozen=True)
class Ffmpeg:
    """An ffmpeg binary, what it says of itself, and why it was picked."""

    path: str
    version: str  # as the binary prints it: "5.1.6-0+deb12u1", "9.0.2-static"
    why: str
    missing: frozenset[str] = frozenset()  # encoders and filters it lacks
    passed_over: tuple[str, ...] = ()  # the candidates before it, each with its reason
    unusable: str | None = None  # why it could not even be asked what it is

    @property
    def release(self) -> tuple[int, int] | None:
        """``(major, minor)``; ``None`` for a build that is not a release."""
        match = _RELEASE.match(self.version)
        return (int(match[1]), int(match[2])) if match else None

    @property
    def problem(self) -> str | None:
        """Why this binary cannot serve, or ``None``."""
        need = ".".join(map(str, MINIMUM))
        if self.unusable is not None:
            return f"it could not be run ({self.unusable}); video2mp3 needs ffmpeg {need} or newer"
        if self.version == "?":
            return f"it does not answer as an ffmpeg does; video2mp3 needs ffmpeg {need} or newer"
        if self.release is not None and self.release < MINIMUM:
            return f"version {self.version} is older than {need}, the oldest video2mp3 supports"
        if self.missing:
            return f"it lacks {', '.join(sorted(self.missing))}"
        return None

    def describe(self) -> str:
        return f"ffmpeg {self.version} at {self.path} ({self.why})"


def choose_ffmpeg(configured: str | None = None) -> Ffmpeg:
    """The ffmpeg to run (the module's docstring says which and why); ``SettingsError``, naming
    each candidate and what was wrong with it, when none is fit."""
    if configured:
        candidates: Iterator[tuple[str, str]] = iter([(configured, "named by VIDEO2MP3_FFMPEG")])
    else:
        candidates = _candidates()
    passed_over: list[str] = []
    for path, why in candidates:
        found = identify(path, why)
        if found.problem is None:
            return Ffmpeg(found.path, found.version, why, passed_over=tuple(passed_over))
        passed_over.append(f"{found.describe()}: {found.problem}")
    if not passed_over:
        raise SettingsError("no ffmpeg found: install ffmpeg 5.1 or newer, or video2mp3[converter]")
    raise SettingsError("no usable ffmpeg: " + "; ".join(passed_over))


@functools.cache
def identify(path: str, why: str) -> Ffmpeg:
    """What the binary at ``path`` says of itself (the binary's version and what it lacks)."""
    try:
        banner = _ask(path, "-version").partition("\n")[0]
        encoders = _names(_ask(path, "-encoders"))
        filters = _names(_ask(path, "-filters"))
    except (OSError, subprocess.SubprocessError) as exc:
        return Ffmpeg(path, "?", why, unusable=str(exc))
    version = banner.split(" version ", 1)[1].split(" ", 1)[0] if " version " in banner else "?"
    missing = (ENCODERS - encoders) | (FILTERS - filters)
    return Ffmpeg(path, version, why, missing=frozenset(missing))


def _candidates() -> Iterator[tuple[str, str]]:
    if found := shutil.which("ffmpeg"):
        yield found, "found on PATH"
    try:
        import imageio_ffmpeg
    except ImportError:
        return
    yield str(imageio_ffmpeg.get_ffmpeg_exe()), "the pinned static build of video2mp3[converter]"


def _ask(path: str, flag: str) -> str:
    done = subprocess.run(
        [path, "-hide_banner", "-nostdin", flag],
        capture_output=True,
        text=True,
        timeout=ASK_TIMEOUT,
        check=True,
    )
    return done.stdout


def _names(listing: str) -> frozenset[str]:
    """The names in ffmpeg's ``-encoders`` or ``-filters`` listing: each entry's second word,
    after its flags."""
    return frozenset(words[1] for line in listing.splitlines() if len(words := line.split()) > 1)
