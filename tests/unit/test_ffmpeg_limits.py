"""The limits every ffmpeg child runs under, including dying with the converter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import FFMPEG, wait_for
from video2mp3.converter.ffmpeg import (
    MEMORY_LIMIT,
    NotStarted,
    armed,
    check_ffmpeg,
    limited,
    run,
    within,
)
from video2mp3.errors import SettingsError, Video2mp3Error

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)

PARENT = """
import subprocess, sys, time
from video2mp3.converter.ffmpeg import armed, limited
child = subprocess.Popen(limited(["sleep", "60"], cpu_seconds=10, file_bytes=10**6), text=True)
armed(child)
print(child.pid, flush=True)
time.sleep(60)
"""


def state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return "gone"
    return status.split("State:")[1].split()[0]


def test_a_child_dies_with_a_killed_converter() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert state(child) in ("S", "R")
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    wait_for(lambda: state(child) in ("Z", "gone"), 10, "the orphaned child to be killed")


def test_a_child_runs_under_the_limits_asked_for() -> None:
    shown = subprocess.run(
        limited(["cat", "/proc/self/limits"], cpu_seconds=7, file_bytes=12345),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    limits = {line[:26].strip(): line[26:].split()[:2] for line in shown.splitlines()[1:]}
    assert limits["Max cpu time"] == ["7", "7"]
    assert limits["Max file size"] == ["12345", "12345"]
    assert limits["Max address space"] == [str(MEMORY_LIMIT)] * 2


def test_an_ffmpeg_that_cannot_start_is_the_converters_failure_not_the_files() -> None:
    with pytest.raises(NotStarted, match="/nonexistent/ffmpeg"):
        run(["/nonexistent/ffmpeg", "-version"], deadline=within(10), file_bytes=10**6)
    assert not issubclass(NotStarted, Video2mp3Error)  # so the job is tried again


def test_an_ffmpeg_that_cannot_run_under_its_limits_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot run under its limits"):
        check_ffmpeg(str(tmp_path / "ffmpeg"), timeout=10, max_seconds=60)
    check_ffmpeg(FFMPEG, timeout=10, max_seconds=60)


def test_a_child_dies_with_the_thread_that_started_it_however_soon() -> None:
    # The window between a spawn's return and the arming is a fraction of a millisecond on a
    # busy machine: many tries give a broken ``armed`` many chances to show.
    children: list[subprocess.Popen[str]] = []

    def start() -> None:  # and end at once
        child = subprocess.Popen(
            limited(["sleep", "60"], cpu_seconds=10, file_bytes=10**6), text=True
        )
        armed(child)
        children.append(child)

    try:
        for _ in range(40):
            thread = threading.Thread(target=start)
            thread.start()
            thread.join()
        wait_for(
            lambda: all(child.poll() is not None for child in children),
            10,
            "every child to be killed with its thread",
        )
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert [child.returncode for child in children] == [-signal.SIGKILL] * 40


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("kill -SEGV $$", "ffmpeg_crashed"),  # a crash: the file's or the build's doing
        ("kill -ABRT $$", "ffmpeg_crashed"),
        ("kill -XFSZ $$", "resource_limit"),  # what the kernel sends past the file size limit
        ("kill -XCPU $$", "resource_limit"),  # ... and past the CPU time limit
        ("exit 1", "invalid_media"),  # ffmpeg said the file is not one it can read
    ],
)
def test_how_ffmpeg_ended_says_what_went_wrong(tmp_path: Path, script: str, code: str) -> None:
    ffmpeg = tmp_path / "ffmpeg"
    ffmpeg.write_text(f"#!/bin/sh\n{script}\n")
    ffmpeg.chmod(0o755)
    with pytest.raises(Video2mp3Error) as failed:
        run([str(ffmpeg)], deadline=within(10), file_bytes=10**6)
    assert failed.value.code == code
