"""Loudness normalisation (EBU R128) in two passes: measure, then one linear gain.

Why two passes: a single pass of ffmpeg's ``loudnorm`` cannot know the whole file's loudness in
advance, so it adapts the gain as it goes (dynamic mode): it compresses the sound, and its
limiter works at 192 kHz, before resampling and MP3 coding, so the MP3's true peak overshoots
(measured +1.5 to +2 dBTP for a -5 LUFS target). The first pass here measures the integrated
loudness and the true peak of the audio that will be converted (same stream, same trim); the
second applies one gain, which keeps the dynamics intact. The gain reaches the target unless the
true peak would then pass ``PEAK_CEILING``: the peak bound wins, and the MP3 is as loud as it can
be without clipping. The ceiling leaves 1 dB under -1 dBTP for what resampling and MP3 coding add
(measured up to 0.5 dB).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from video2mp3.errors import MediaError

PEAK_CEILING = -2.0  # dBTP before encoding; the MP3 stays at or under -1 dBTP
MAX_GAIN = 60.0  # dB; near-silence is not blown up into noise


@dataclass(frozen=True)
class Loudness:
    integrated: float  # LUFS
    true_peak: float  # dBTP


def measure_filter(stats: Path) -> str:
    """The filter of the first pass: it writes the measurement as JSON to ``stats``, a file name
    chosen by the server (it is not escaped for the filter graph)."""
    return f"loudnorm=print_format=json:stats_file={stats}"


def read_measurement(stats: Path) -> Loudness:
    """The first pass's result; ``MediaError`` if ffmpeg wrote none (no audio decoded)."""
    try:
        facts = json.loads(stats.read_text())
        return Loudness(float(facts["input_i"]), float(facts["input_tp"]))
    except (OSError, ValueError, KeyError):
        raise MediaError("the loudness of the audio could not be measured") from None


def gain(target: float, measured: Loudness) -> float:
    """The gain in dB that brings ``measured`` to ``target`` LUFS within the peak ceiling."""
    if not math.isfinite(measured.integrated):  # silence: nothing to normalise
        return 0.0
    wanted = target - measured.integrated
    if math.isfinite(measured.true_peak):
        wanted = min(wanted, PEAK_CEILING - measured.true_peak)
    return min(wanted, MAX_GAIN)


def gain_filter(target: float, measured: Loudness) -> str:
    """The filter of the second pass."""
    return f"volume={gain(target, measured):.2f}dB"
