"""The two ways a file is analysed: PyAV in a sandbox, and ffmpeg's report of its input when
PyAV dies on the file. Both tell the same facts; a file one of them dies on still converts, and
one that both die on fails with a code of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Harness
from tests.support import CORPUS, FFMPEG, MAKER, PYAV_DIES_ON, decoded_seconds, inspect_audio
from video2mp3.converter.ffmpeg import within
from video2mp3.converter.probing import Prober
from video2mp3.converter.report import report_facts
from video2mp3.domain.events import ConversionFailed
from video2mp3.errors import MediaError

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)


def die(path: str, whole: bool) -> dict[str, Any]:
    """A first way that dies on every file, as PyAV 17.1 to 18.1 do on some (a signal)."""
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


class DyingProber(Prober):
    first_way = staticmethod(die)


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video with a title, two chapters, two audio tracks in two languages (the second the
    default) and a cover picture attached."""
    folder = tmp_path_factory.mktemp("rich")
    chapters = folder / "chapters.txt"
    chapters.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\n"
                        "title=First: part\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=3000\n"
                        "title=Second\n")  # fmt: skip
    cover = folder / "cover.png"
    subprocess.run([MAKER, "-v", "error", "-f", "lavfi", "-i", "color=red:size=64x64", "-frames:v",
                    "1", str(cover)], check=True)  # fmt: skip
    path = folder / "rich.mkv"
    subprocess.run(
        [MAKER, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:d=3",
         "-f", "lavfi", "-i", "sine=d=3", "-f", "lavfi", "-i", "sine=d=3:f=600:r=48000",
         "-i", str(chapters), "-map", "0", "-map", "1", "-map", "2", "-map_chapters", "3",
         "-attach", str(cover), "-metadata:s:t", "mimetype=image/png",
         "-metadata", "title=A title: with a colon", "-metadata:s:a:0", "language=eng",
         "-metadata:s:a:1", "language=fre", "-disposition:a:0", "0",
         "-disposition:a:1", "default", "-c:v", "libx264", "-c:a", "aac", "-shortest",
         str(path)],
        check=True,
    )  # fmt: skip
    return path


def comparable(facts: dict[str, Any]) -> dict[str, Any]:
    """What both ways tell, to the precision of ffmpeg's report (10 ms)."""
    return {
        "format": facts["format"],
        "duration": round(facts["duration"] or 0, 1),
        "audio": [
            {**a, "duration": None, "layout": None, "language": a["language"] or None}
            for a in facts["audio"]
        ],
        "video": facts["video"],
        "title": facts["title"],
        "chapters": [
            (round(c["start"], 2), round(c["end"], 2), c["title"]) for c in facts["chapters"]
        ],
    }


def pyav_facts(path: Path) -> dict[str, Any]:
    """The first way's facts, in a process of its own."""
    done = subprocess.run([sys.executable, "-m", "video2mp3.converter.probe", str(path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, f"PyAV died on {path.name}: {done.stderr[-300:]}"
    facts: dict[str, Any] = json.loads(done.stdout)
    assert "error" not in facts, facts
    return facts


@pytest.mark.parametrize("name", sorted(set(CORPUS) - PYAV_DIES_ON))
def test_ffmpeg_reports_what_pyav_probes(name: str, corpus: dict[str, Path]) -> None:
    reported = report_facts(FFMPEG, corpus[name], within(60))
    assert comparable(reported) == comparable(pyav_facts(corpus[name]))


def test_ffmpeg_reports_titles_chapters_languages_and_pictures(rich: Path) -> None:
    facts = report_facts(FFMPEG, rich, within(60))
    assert comparable(facts) == comparable(pyav_facts(rich))
    assert facts["title"] == "A title: with a colon"
    assert [c["title"] for c in facts["chapters"]] == ["First: part", "Second"]
    assert [(a["language"], a["default"]) for a in facts["audio"]] == [
        ("eng", False),
        ("fre", True),
    ]


def test_a_report_without_audio_says_so(tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    subprocess.run([MAKER, "-v", "error", "-f", "lavfi", "-i", "testsrc2=d=1", str(silent)],
                   check=True)  # fmt: skip
    assert report_facts(FFMPEG, silent, within(60))["error"]["code"] == "no_audio"


@pytest.mark.parametrize("name", [*sorted(PYAV_DIES_ON), "pcm_16ch.wav", "two_languages.mkv"])
def test_a_file_the_probe_dies_on_is_read_by_ffmpeg_and_converts(
    name: str, corpus: dict[str, Path], tmp_path: Path
) -> None:
    prober = DyingProber(FFMPEG)
    try:
        event = Harness(tmp_path, prober=prober).convert(corpus[name].read_bytes(), name)
    finally:
        prober.close()
    facts = inspect_audio(Harness(tmp_path).mp3(event, tmp_path))
    assert facts.channels == 2
    assert abs(facts.duration - decoded_seconds(corpus[name])) <= 0.1


def test_a_file_that_crashes_both_readers_fails_with_its_own_code(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    crashing = tmp_path / "ffmpeg"
    crashing.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    prober = DyingProber(str(crashing))
    try:
        with pytest.raises(MediaError) as caught:
            prober.probe(corpus["pcm_6ch.wav"])
        event = Harness(tmp_path, prober=prober).convert(b"\0" * 1000, "x.mov")
    finally:
        prober.close()
    assert caught.value.code == "analysis_crashed"
    assert isinstance(event.data, ConversionFailed)
    assert (event.data.code, event.data.retryable) == ("analysis_crashed", False)
    assert "both of the converter's readers" in event.data.message
