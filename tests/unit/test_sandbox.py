"""The sandbox that parses untrusted files: answers, and survives whatever kills its child."""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Iterator

import pytest

from video2mp3.converter.sandbox import TASKS_PER_CHILD, Sandbox, SandboxCrashed

LIMITS = {resource.RLIMIT_AS: 1024**3}


def pid() -> int:
    return os.getpid()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def hang() -> None:
    time.sleep(60)


def hog() -> int:
    return len(bytearray(2 * 1024**3))  # over the address-space limit


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(LIMITS)
    yield box
    box.close()


def test_calls_run_in_one_child_that_is_not_us(sandbox: Sandbox) -> None:
    first = sandbox.run(pid, timeout=30)
    assert first != os.getpid()
    assert sandbox.run(pid, timeout=30) == first  # no new interpreter per call


def test_a_crash_is_reported_and_the_next_call_gets_a_new_child(sandbox: Sandbox) -> None:
    before = sandbox.run(pid, timeout=30)
    with pytest.raises(SandboxCrashed, match="died"):
        sandbox.run(die, timeout=30)
    assert sandbox.run(pid, timeout=30) not in (before, os.getpid())


def test_an_overrun_is_killed(sandbox: Sandbox) -> None:
    before = sandbox.run(pid, timeout=30)
    with pytest.raises(SandboxCrashed, match="within"):
        sandbox.run(hang, timeout=0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)  # that child is gone
    assert sandbox.run(pid, timeout=30) != before


def test_limits_hold_in_the_child(sandbox: Sandbox) -> None:
    with pytest.raises(MemoryError):
        sandbox.run(hog, timeout=30)


def test_the_child_is_replaced_after_a_number_of_calls(sandbox: Sandbox) -> None:
    seen = {sandbox.run(pid, timeout=30) for _ in range(TASKS_PER_CHILD + 1)}
    assert len(seen) == 2
