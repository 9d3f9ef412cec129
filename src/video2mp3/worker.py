"""Running background loops as a service: signals, and its admin listener (``video2mp3.health``).

A worker service (``gateway-worker``, ``converter``, ``notifier``) is a few loops, each in a
thread until SIGTERM. Liveness is "every loop lives"; readiness adds "not stopping"; the
dependencies' state is reported beside them. SIGTERM stops taking messages; a message in hand is
finished (or, if the process is killed, redelivered by the broker), so a pod's grace period must
outlast the longest handler (docs/DEPLOY.md). A loop that ends on its own is a bug: the process
then stops with status 1, so that the orchestrator restarts it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping

from video2mp3.backoff import Backoff
from video2mp3.errors import Unavailable
from video2mp3.health import Check, Health

log = logging.getLogger(__name__)

Loop = Callable[[threading.Event], None]  # runs until the event is set


def repeat(
    step: Callable[[], bool], stop: threading.Event, idle: float, wake: threading.Event
) -> None:
    """Call ``step`` until ``stop``: again at once while it has work, after ``idle`` seconds (or a
    ``wake``) when it has none, with growing delays while it fails."""
    backoff = Backoff(first=idle)
    while not stop.is_set():
        try:
            busy = step()
            backoff.reset()
        except Unavailable as exc:
            log.warning("paused: %s", exc.message)
            busy, idle_for = False, backoff.next()
        except Exception:
            log.exception("background step failed")
            busy, idle_for = False, backoff.next()
        else:
            idle_for = idle
        if not busy:
            deadline = time.monotonic() + idle_for
            while (
                not (stop.is_set() or wake.is_set()) and (left := deadline - time.monotonic()) > 0
            ):
                wake.wait(min(left, 0.5))
            wake.clear()


def run_worker(
    loops: Mapping[str, Loop], *, port: int, checks: Mapping[str, Check], on_stop: Check
) -> int:
    """Run ``loops`` until SIGTERM or SIGINT (exit status 0), or until one ends (status 1).

    ``checks`` are the dependencies, reported on the admin listener at ``port``.
    """
    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(stop,), name=n) for n, loop in loops.items()]

    def running() -> None:
        if dead := _dead(threads):
            raise Unavailable(f"stopped: {', '.join(dead)}")

    health = Health({"loops": running}, checks)
    server = health.serve(port)  # first: a taken port must stop us before we take a message

    def on_signal(*_: object) -> None:
        health.stopping.set()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    for thread in threads:
        thread.start()
    log.info("worker started", extra={"loops": list(loops), "port": port})
    status = 0
    while any(t.is_alive() for t in threads):
        if not stop.is_set() and not all(t.is_alive() for t in threads):
            log.error("a loop ended on its own; stopping", extra={"loops": _dead(threads)})
            stop.set()
            status = 1
        for thread in threads:
            thread.join(timeout=0.5)
    health.close()
    server.shutdown()
    server.server_close()
    on_stop()
    log.info("worker stopped", extra={"loops": list(loops)})
    return status


def _dead(threads: list[threading.Thread]) -> list[str]:
    return [t.name for t in threads if t.ident is not None and not t.is_alive()]
