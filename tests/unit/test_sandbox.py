"""The sandbox that parses untrusted files: answers, and survives whatever kills its child."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wait_for
from tests.unit.test_ffmpeg_limits import state
from video2mp3.converter.sandbox import TASKS_PER_CHILD, Sandbox, SandboxCrashed

LIMITS = {resource.RLIMIT_AS: 1024**3}
CALL = {"timeout": 30, "cpu_seconds": 10}


def burn(seconds: float) -> float:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass
    return time.process_time()


def pid() -> int:
    return os.getpid()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def hang() -> None:
    time.sleep(60)


def spin() -> None:
    while True:
        pass


def hog() -> int:
    return len(bytearray(2 * 1024**3))  # over the address-space limit


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(LIMITS)
    yield box
    box.close()


def test_start_returns_once_the_child_has_booted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that reports ready converts its first job at once: the child has imported what
    calls need before ``start`` returns, not during the first call."""
    mark = tmp_path / "booted"
    monkeypatch.setenv("SANDBOX_BOOT_MARK", str(mark))
    box = Sandbox(LIMITS, preload=("tests.unit.sandbox_preload",))
    try:
        box.start()
        assert mark.exists()
        assert box.run(pid, **CALL) != os.getpid()
    finally:
        box.close()


def test_calls_run_in_one_child_that_is_not_us(sandbox: Sandbox) -> None:
    first = sandbox.run(pid, timeout=30, cpu_seconds=10)
    assert first != os.getpid()
    assert sandbox.run(pid, timeout=30, cpu_seconds=10) == first  # no new interpreter per call


def test_a_crash_is_reported_and_the_next_call_gets_a_new_child(sandbox: Sandbox) -> None:
    before = sandbox.run(pid, timeout=30, cpu_seconds=10)
    with pytest.raises(SandboxCrashed, match="died"):
        sandbox.run(die, timeout=30, cpu_seconds=10)
    assert sandbox.run(pid, timeout=30, cpu_seconds=10) not in (before, os.getpid())


def test_an_overrun_is_killed(sandbox: Sandbox) -> None:
    before = sandbox.run(pid, timeout=30, cpu_seconds=10)
    with pytest.raises(SandboxCrashed, match="within"):
        sandbox.run(hang, timeout=0.5, cpu_seconds=10)
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)  # that child is gone
    assert sandbox.run(pid, timeout=30, cpu_seconds=10) != before


def test_limits_hold_in_the_child(sandbox: Sandbox) -> None:
    with pytest.raises(MemoryError):
        sandbox.run(hog, timeout=30, cpu_seconds=10)


def test_the_child_is_replaced_after_a_number_of_calls(sandbox: Sandbox) -> None:
    seen = {sandbox.run(pid, timeout=30, cpu_seconds=10) for _ in range(TASKS_PER_CHILD + 1)}
    assert len(seen) == 2


def test_each_call_has_its_own_cpu_limit(sandbox: Sandbox) -> None:
    for _ in range(3):  # calls that use CPU do not add up to a limit
        assert sandbox.run(burn, 0.6, timeout=30, cpu_seconds=1) > 0
    with pytest.raises(SandboxCrashed, match="died"):
        sandbox.run(spin, timeout=30, cpu_seconds=1)  # SIGXCPU after a second of CPU


PARENT = """
import os, sys, time
from tests.support import wait_for
from tests.unit.test_ffmpeg_limits import state
from video2mp3.converter.sandbox import Sandbox
box = Sandbox({})
print(box.run(os.getpid, timeout=60, cpu_seconds=5), flush=True)
time.sleep(60)
"""


def test_the_child_dies_with_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    wait_for(lambda: state(child) in ("Z", "gone"), 10, "the orphaned sandbox child to die")


def test_the_child_outlives_the_thread_that_started_it(sandbox: Sandbox) -> None:
    """Children are started from whichever thread needs one; that thread may end first."""
    started = threading.Thread(target=sandbox.run, args=(pid,), kwargs=CALL)
    started.start()
    started.join()
    child = sandbox.run(pid, **CALL)  # the same child, still alive: no call sees it crashed
    assert sandbox.run(pid, **CALL) == child != os.getpid()
