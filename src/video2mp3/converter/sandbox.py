"""A long-lived child process that runs one untrusted parse at a time under resource limits.

Probing hostile media with libav in the worker itself would let a crafted file crash the worker;
starting a fresh interpreter per file (and importing PyAV in it) costs about a third of a second
per job. ``Sandbox`` keeps one child process ready instead: a crash, a limit or a timeout kills
only that child, and nothing of one file's parse persists beyond ``TASKS_PER_CHILD`` calls. A
replacement child starts (and imports what it needs) at once, in the background, so the next
job rarely waits for it; the first child is waited for at start-up (``start``), so that a worker
that reports ready converts its first job at once. The child dies with its parent process, and
each call gets its own CPU-time limit.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
TASKS_PER_CHILD = 50
BOOT_TIMEOUT = 60.0  # seconds ``start`` waits for a child to boot (about one, importing PyAV)
ORPHAN_CHECK_SECONDS = 0.5


class SandboxCrashed(Exception):
    """The child died (a signal, a resource limit) or overran its time while running the call."""


class Sandbox:
    def __init__(self, limits: dict[int, int], *, preload: tuple[str, ...] = ()) -> None:
        """``limits``: ``resource.RLIMIT_*`` -> value, set in each new child, which also imports
        the ``preload`` modules before it is ready."""
        self._limits = limits
        self._preload = preload
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._booted: Future[int] | None = None

    def start(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Start the child now, not on the first call, and wait until it has booted (at most
        ``timeout`` seconds: a child that cannot boot is the first call's failure)."""
        with self._lock:
            self._pool = self._pool or self._start()
            booted = self._booted
        if booted is not None:
            wait([booted], timeout)

    def run(self, function: Callable[..., T], *args: Any, timeout: float, cpu_seconds: int) -> T:
        """``function(*args)`` in the child with at most ``cpu_seconds`` of CPU time;
        ``SandboxCrashed`` if the child dies or overruns ``timeout``."""
        with self._lock:  # one parse at a time: the limits are per process
            pool = self._pool = self._pool or self._start()
            future: Future[T] = pool.submit(_call, function, args, cpu_seconds)
            try:
                return future.result(timeout)
            except FutureTimeout:
                self._replace()
                raise SandboxCrashed(f"no answer within {timeout} s") from None
            except BrokenProcessPool:
                self._replace()
                raise SandboxCrashed("the child process died") from None

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1,
            # spawn, not fork: a fresh interpreter, no copy of the worker's threads and locks
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_prepare,
            initargs=(self._limits, self._preload, os.getpid()),
            max_tasks_per_child=TASKS_PER_CHILD,
        )
        self._booted = pool.submit(os.getpid)  # spawns the child now: it boots in the background
        return pool

    def _replace(self) -> None:
        self._kill()
        self._pool = self._start()

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)


def _prepare(limits: dict[int, int], preload: tuple[str, ...], parent: int) -> None:
    """In the new child: die with the parent, apply the limits, import what calls will need."""
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
    for module in preload:
        importlib.import_module(module)


def _call(function: Callable[..., T], args: tuple[Any, ...], cpu_seconds: int) -> T:
    """Run one call with a CPU-time limit of its own: the soft limit, raised from what the
    child has used so far (its hard limit stays as the parent left it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime) + 1 + cpu_seconds
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard) if hard >= 0 else soft, hard))
    return function(*args)


def _exit_when_orphaned(parent: int) -> None:
    """Exit once the parent process is gone. Not ``PR_SET_PDEATHSIG``: it fires when the
    *thread* that started the child ends, and the children are started (and replaced) from
    whichever thread needs one."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)
