"""A long-lived child process that runs one untrusted parse at a time under resource limits.

Probing hostile media with libav in the worker itself would let a crafted file crash the worker;
starting a fresh interpreter per file (and importing PyAV in it) costs about a third of a second
per job. ``Sandbox`` keeps one child process ready instead: a crash, a limit or a timeout kills
only that child, which is replaced for the next call, and nothing of one file's parse can
persist into the next's beyond ``TASKS_PER_CHILD`` calls (the child is then replaced anyway,
which also bounds the CPU time its limit counts).
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
TASKS_PER_CHILD = 50


class SandboxCrashed(Exception):
    """The child died (a signal, a resource limit) or overran its time while running the call."""


class Sandbox:
    def __init__(self, limits: dict[int, int]) -> None:
        """``limits``: ``resource.RLIMIT_*`` -> value, set in each new child before any call."""
        self._limits = limits
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def run(self, function: Callable[..., T], *args: Any, timeout: float) -> T:
        """``function(*args)`` in the child; ``SandboxCrashed`` if the child dies or overruns."""
        with self._lock:  # one parse at a time: the limits are per process
            pool = self._pool = self._pool or self._start()
            future = pool.submit(function, *args)
            try:
                return future.result(timeout)
            except FutureTimeout:
                self._kill()
                raise SandboxCrashed(f"no answer within {timeout} s") from None
            except BrokenProcessPool:
                self._kill()
                raise SandboxCrashed("the child process died") from None

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            # spawn, not fork: a fresh interpreter, no copy of the worker's threads and locks
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_apply,
            initargs=(self._limits,),
            max_tasks_per_child=TASKS_PER_CHILD,
        )

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)


def _apply(limits: dict[int, int]) -> None:
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
