"""Which ffmpeg the converter runs: the one named, else a fit one on PATH, else the pinned build;
one too old, or without LAME, is passed over (or refused, when named) with a clear reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import FFMPEG
from video2mp3.converter import binary
from video2mp3.converter.binary import Ffmpeg, choose_ffmpeg
from video2mp3.errors import SettingsError

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)


def fake_ffmpeg(folder: Path, version: str, *, lame: bool = True) -> Path:
    """An executable that answers ``-version``, ``-encoders`` and ``-filters`` as an ffmpeg of
    ``version`` would (with or without LAME)."""
    real = {
        flag: subprocess.run(
            [FFMPEG, "-hide_banner", flag], capture_output=True, text=True, check=True
        ).stdout
        for flag in ("-encoders", "-filters")
    }
    if not lame:
        real["-encoders"] = real["-encoders"].replace("libmp3lame", "libshine")
    folder.mkdir(parents=True, exist_ok=True)
    for flag, listing in real.items():
        (folder / flag.strip("-")).write_text(listing)
    path = folder / "ffmpeg"
    path.write_text(
        "#!/bin/sh\n"
        f'[ "$3" = -version ] && echo "ffmpeg version {version} Copyright (c) 2000-2024" && exit\n'
        f'/bin/cat "{folder}/${{3#-}}"\n'
    )
    path.chmod(0o755)
    binary.identify.cache_clear()
    return path


@pytest.mark.parametrize(
    ("version", "release"),
    [("5.1.6-0+deb12u1", (5, 1)), ("n7.1", (7, 1)), ("9.0.2-static", (9, 0)),
     ("4.4.2-0ubuntu0.22.04.1", (4, 4)), ("N-112233-g0123abcd", None)],
)  # fmt: skip
def test_the_release_is_read_from_the_version(version: str, release: object) -> None:
    assert Ffmpeg("ffmpeg", version, "test").release == release


def test_the_real_one_is_fit() -> None:
    chosen = choose_ffmpeg(FFMPEG)
    assert chosen.problem is None
    assert chosen.release is None or chosen.release >= (5, 1)


def test_a_named_ffmpeg_too_old_is_refused_in_one_line(tmp_path: Path) -> None:
    old = fake_ffmpeg(tmp_path / "old", "4.4.2-0ubuntu0.22.04.1")
    with pytest.raises(SettingsError) as refused:
        choose_ffmpeg(str(old))
    message = refused.value.message
    assert "\n" not in message
    assert "4.4.2" in message
    assert "older than 5.1" in message
    assert str(old) in message


def test_a_named_ffmpeg_without_lame_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="lacks libmp3lame"):
        choose_ffmpeg(str(fake_ffmpeg(tmp_path, "6.1.1", lame=False)))


def test_path_wins_over_the_pinned_build_when_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fit = fake_ffmpeg(tmp_path, "7.1.1-1")
    monkeypatch.setenv("PATH", str(tmp_path))
    chosen = choose_ffmpeg()
    assert (chosen.path, chosen.version, chosen.why) == (str(fit), "7.1.1-1", "found on PATH")
    assert chosen.passed_over == ()


def test_an_unfit_ffmpeg_on_path_is_passed_over_for_the_pinned_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("imageio_ffmpeg")
    fake_ffmpeg(tmp_path, "4.4.2-0ubuntu0.22.04.1")
    monkeypatch.setenv("PATH", str(tmp_path))
    chosen = choose_ffmpeg()
    assert chosen.why == "the pinned static build of video2mp3[converter]"
    [passed] = chosen.passed_over
    assert "4.4.2" in passed
    assert "older than 5.1" in passed


def test_the_check_command_says_which_ffmpeg_and_why(tmp_path: Path) -> None:
    old = fake_ffmpeg(tmp_path, "4.4.2")
    env = {"PATH": "/usr/bin:/bin", "VIDEO2MP3_FFMPEG": FFMPEG}
    ok = subprocess.run([sys.executable, "-m", "video2mp3.cli", "serve", "converter", "--check"],
                        capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert f"at {FFMPEG} (named by VIDEO2MP3_FFMPEG)" in ok.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "video2mp3.cli", "serve", "converter", "--check"],
        capture_output=True, text=True, env={**env, "VIDEO2MP3_FFMPEG": str(old)}, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "ffmpeg 4.4.2" in refused.stderr
    assert "older than 5.1" in refused.stderr


def test_a_named_program_that_is_no_ffmpeg_is_refused_naming_what_is_needed() -> None:
    with pytest.raises(SettingsError, match=r"does not answer as an ffmpeg does; .*5\.1 or newer"):
        choose_ffmpeg("/bin/true")
