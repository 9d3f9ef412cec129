"""The limits every ffmpeg child runs under, including dying with the converter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import wait_for
from video2mp3.converter.ffmpeg import MEMORY_LIMIT, limited

PARENT = """
import subprocess, sys, time
from video2mp3.converter.ffmpeg import limited
child = subprocess.Popen(limited(["sleep", "60"], cpu_seconds=10, file_bytes=10**6))
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
