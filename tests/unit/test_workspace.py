"""Scratch directories: a killed converter's are removed at start-up, a live one's are kept."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

import pytest

from video2mp3.converter.workspace import LOCK, MIN_AGE_SECONDS, PREFIX, remove_leftovers, workspace


def aged(directory: Path) -> Path:
    old = time.time() - 2 * MIN_AGE_SECONDS
    os.utime(directory, (old, old))
    return directory


def test_leftovers_go_and_live_or_young_directories_stay(tmp_path: Path) -> None:
    killed = tmp_path / f"{PREFIX}killed"
    killed.mkdir()
    (killed / "input").write_bytes(b"x" * 1000)
    (killed / LOCK).touch()
    aged(killed)
    unlocked = aged(Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp_path)))  # no lock file yet
    young = tmp_path / f"{PREFIX}young"
    young.mkdir()
    live = tmp_path / f"{PREFIX}live"
    live.mkdir()
    with (live / LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a running conversion holds it
        aged(live)
        assert sorted(remove_leftovers(tmp_path)) == sorted([killed, unlocked])
    assert not killed.exists()
    assert not unlocked.exists()
    assert young.exists()
    assert live.exists()


def test_a_workspace_is_held_while_in_use_and_removed_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with workspace() as tmp:
        aged(Path(tmp))
        assert remove_leftovers(tmp_path) == []
        assert Path(tmp).is_dir()
    assert not Path(tmp).exists()
