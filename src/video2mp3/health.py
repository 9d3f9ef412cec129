"""The admin listener every service runs beside its work: liveness, readiness and metrics.

A small thread-served HTTP endpoint on a port of its own, never the public port and never the
request thread pool, so a probe does not queue behind slow uploads and ``/metrics`` is not public.
``/healthz`` (liveness) and ``/readyz`` (readiness) answer from this process's own state: its
``alive`` checks (its loops still run) and, for readiness, that it is not stopping. A dependency
never decides either: an outage of a shared service is shared by every pod, so restarting or
unreadying them all would only turn the answers the services give (503 per request, waits in
place, the outbox) into the ingress's blank 503s and block node drains. The dependencies' state is
reported beside it instead, in ``/readyz``'s body and as the ``video2mp3_dependency_up`` gauge,
from checks one thread runs every ``interval`` seconds: a probe costs no connection.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from video2mp3.errors import Unavailable
from video2mp3.serving import AdminRequestHandler

log = logging.getLogger(__name__)

Check = Callable[[], None]

# Often enough to see an outage within a scrape or two; rare enough that the SMTP and broker
# servers do not notice a fleet of probing pods.
CHECK_INTERVAL = 30.0

DEPENDENCY_UP = Gauge(
    "video2mp3_dependency_up", "1 if the dependency answered its last check", ["dependency"]
)


def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """Run each check; return the failing ones with their reasons."""
    failures = {}
    for name, check in checks.items():
        try:
            check()
        except Unavailable as exc:
            failures[name] = exc.message
        except Exception as exc:
            failures[name] = repr(exc)
    return failures


class Health:
    """This process's own state and its dependencies' last known state."""

    def __init__(
        self,
        alive: Mapping[str, Check] | None = None,
        dependencies: Mapping[str, Check] | None = None,
        *,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.alive = dict(alive or {})
        self.dependencies = dict(dependencies or {})
        self.interval = interval
        self.stopping = threading.Event()
        self._states = {name: "not checked yet" for name in self.dependencies}
        self._closed = threading.Event()

    def liveness(self) -> dict[str, str]:
        """The failing ``alive`` checks: empty while the process works."""
        return run_checks(self.alive)

    def readiness(self) -> dict[str, str]:
        """What keeps this process from taking work: empty when it can."""
        failures = self.liveness()
        if self.stopping.is_set():
            failures["process"] = "stopping"
        return failures

    def dependency_states(self) -> dict[str, str]:
        """Each dependency's last check: ``"ok"`` or why it failed."""
        return dict(self._states)

    def check_dependencies(self) -> None:
        """Check every dependency once and record the results."""
        failures = run_checks(self.dependencies)
        for name in self.dependencies:
            self._states[name] = failures.get(name, "ok")
            DEPENDENCY_UP.labels(name).set(0 if name in failures else 1)
            if name in failures:
                log.warning("dependency %s is down: %s", name, failures[name])

    def serve(self, listener: int | ThreadingHTTPServer) -> ThreadingHTTPServer:
        """Answer on ``listener`` (a port, or a socket from ``listen``) and check the
        dependencies, both in daemon threads."""
        server = listen(listener) if isinstance(listener, int) else listener
        server.RequestHandlerClass = _handler(self)
        threading.Thread(target=server.serve_forever, name="admin", daemon=True).start()
        threading.Thread(target=self._watch, name="dependency-checks", daemon=True).start()
        log.info("admin listener started", extra={"port": server.server_address[1]})
        return server

    def close(self) -> None:
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.is_set():
            self.check_dependencies()
            self._closed.wait(self.interval)


def listen(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104
    """Bind the admin port, answering nothing yet. Bound before gunicorn forks, the socket is
    shared by its worker processes (each answers some probes), and a taken port stops the
    service at once instead of failing every worker."""
    return _Server((host, port), BaseHTTPRequestHandler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class AdminHandler(AdminRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._answer(health.liveness(), {})
            elif self.path == "/readyz":
                self._answer(health.readiness(), {"dependencies": health.dependency_states()})
            else:
                self._json(404, {"error": {"code": "not_found", "message": "no such path"}})

        def _answer(self, failures: dict[str, str], detail: dict[str, object]) -> None:
            status = "unavailable" if failures else "ok"
            self._json(503 if failures else 200, {"status": status, "failures": failures, **detail})

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

    return AdminHandler
