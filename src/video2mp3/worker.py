"""Running background loops as a service: signals, and a small health and metrics endpoint.

A worker service (``gateway-worker``, ``converter``, ``notifier``) is a few loops, each in a
thread until SIGTERM. ``GET /healthz`` answers 200 while every loop lives, ``GET /readyz`` while
its dependencies answer, ``GET /metrics`` serves Prometheus metrics. SIGTERM stops taking
messages; a message in hand is finished (or, if the process is killed, redelivered by the
broker). A loop that ends on its own is a bug: the process then stops with status 1, so that
the orchestrator restarts it.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from video2mp3.web import Check, run_checks

log = logging.getLogger(__name__)

Loop = Callable[[threading.Event], None]  # runs until the event is set


def run_worker(
    loops: Mapping[str, Loop], *, port: int, checks: Mapping[str, Check], on_stop: Check
) -> int:
    """Run ``loops`` until SIGTERM or SIGINT (exit status 0), or until one ends (status 1)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threads = [threading.Thread(target=loop, args=(stop,), name=n) for n, loop in loops.items()]
    for thread in threads:
        thread.start()
    server = ThreadingHTTPServer(("0.0.0.0", port), _health_handler(threads, checks))  # noqa: S104
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("worker started", extra={"loops": list(loops), "port": port})
    status = 0
    while any(t.is_alive() for t in threads):
        if not stop.is_set() and not all(t.is_alive() for t in threads):
            log.error("a loop ended on its own; stopping", extra={"loops": _dead(threads)})
            stop.set()
            status = 1
        for thread in threads:
            thread.join(timeout=0.5)
    server.shutdown()
    on_stop()
    log.info("worker stopped", extra={"loops": list(loops)})
    return status


def _dead(threads: list[threading.Thread]) -> list[str]:
    return [t.name for t in threads if not t.is_alive()]


def _health_handler(
    threads: list[threading.Thread], checks: Mapping[str, Check]
) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                dead = _dead(threads)
                self._json(
                    503 if dead else 200, {"status": "stopped" if dead else "ok", "stopped": dead}
                )
            elif self.path == "/readyz":
                failures = run_checks(checks)
                status = "unavailable" if failures else "ok"
                self._json(503 if failures else 200, {"status": status, "failures": failures})
            else:
                self._json(404, {"error": {"code": "not_found", "message": "no such path"}})

        def _json(self, status: int, body: object) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None  # probes every few seconds would drown the logs

    return HealthHandler
