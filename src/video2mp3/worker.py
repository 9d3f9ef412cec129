"""Running a queue consumer as a service: signals, and a small health and metrics endpoint.

``GET /healthz`` answers 200 while the consumer thread lives, ``GET /readyz`` while its
dependencies answer, ``GET /metrics`` serves Prometheus metrics. SIGTERM stops taking messages;
the message in hand is finished (or, if the process is killed, redelivered by the broker).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from video2mp3.ports.bus import Bus, GiveUp, Handler
from video2mp3.web import Check, run_checks

log = logging.getLogger(__name__)


def run_consumer(
    bus: Bus,
    queue: str,
    handler: Handler,
    *,
    port: int,
    checks: Mapping[str, Check],
    give_up: GiveUp | None = None,
) -> None:
    """Consume ``queue`` with ``handler`` until SIGTERM or SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    consumer = threading.Thread(
        target=bus.consume, args=(queue, handler, stop, give_up), name=queue
    )
    consumer.start()
    server = ThreadingHTTPServer(("0.0.0.0", port), _health_handler(consumer, checks))  # noqa: S104
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("worker started", extra={"queue": queue, "port": port})
    while consumer.is_alive():
        consumer.join(timeout=0.5)
    server.shutdown()
    bus.close()
    log.info("worker stopped", extra={"queue": queue})


def _health_handler(
    consumer: threading.Thread, checks: Mapping[str, Check]
) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                alive = consumer.is_alive()
                self._json(200 if alive else 503, {"status": "ok" if alive else "stopped"})
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
