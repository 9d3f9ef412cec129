"""What every HTTP service shares: JSON errors, request ids, health probes, metrics, gunicorn.

``install(app, checks)`` gives a Flask app ``/healthz`` (the process answers), ``/readyz`` (every
dependency in ``checks`` answers, else 503) and ``/metrics``; ``serve`` runs an app factory on
gunicorn, building the app in each worker so that no connection crosses a fork.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import gunicorn.app.base
from flask import Blueprint, Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from werkzeug.exceptions import HTTPException

from video2mp3 import logs
from video2mp3.errors import (
    InvalidRequest,
    Unauthorized,
    Unavailable,
    Video2mp3Error,
    http_status,
)

log = logging.getLogger(__name__)

Check = Callable[[], None]

REQUESTS = Counter("http_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram("http_request_seconds", "HTTP request latency", ["endpoint"])


def basic_credentials() -> tuple[str, str]:
    """Email and password from HTTP Basic authentication; ``Unauthorized`` without them."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        raise Unauthorized("send your email and password with HTTP Basic authentication")
    return auth.username, auth.password or ""


def credentials_body() -> tuple[str, str]:
    """Email and password from a JSON body; ``InvalidRequest`` if it is not that."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) for k in ("email", "password")
    ):
        raise InvalidRequest('send a JSON object {"email": "...", "password": "..."}')
    return body["email"], body["password"]


def json_error(status: int, code: str, message: str) -> Response:
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    return response


def install(app: Flask, checks: Mapping[str, Check]) -> None:
    """Add error handlers, request ids, access logs, health probes and metrics to ``app``."""

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        logs.correlation_id.set(g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        endpoint = request.endpoint or "unknown"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        REQUESTS.labels(endpoint, request.method, response.status_code).inc()
        LATENCY.labels(endpoint).observe(elapsed)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if endpoint not in ("health.healthz", "health.readyz", "health.metrics"):
            log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={"duration_ms": round(elapsed * 1000, 1)},
            )
        return response

    @app.errorhandler(Video2mp3Error)
    def _known(error: Video2mp3Error) -> Response:
        status = http_status(error)
        if status >= 500:
            log.error("request failed: %s", error.message, extra={"code": error.code})
        return json_error(status, error.code, error.message)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        return json_error(error.code or 500, code, error.description or code)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return json_error(500, "internal_error", "internal error; the request id is in the logs")

    health = Blueprint("health", __name__)

    @health.get("/healthz")
    def healthz() -> Response:
        """Liveness: the process answers."""
        return jsonify(status="ok")

    @health.get("/readyz")
    def readyz() -> Response:
        """Readiness: every dependency answers."""
        failures = run_checks(checks)
        response = jsonify(status="unavailable" if failures else "ok", failures=failures)
        response.status_code = 503 if failures else 200
        return response

    @health.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    app.register_blueprint(health)


def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """Run each readiness check; return the failing ones with their reasons."""
    failures = {}
    for name, check in checks.items():
        try:
            check()
        except Unavailable as exc:
            failures[name] = exc.message
        except Exception as exc:
            failures[name] = repr(exc)
    return failures


class _Gunicorn(gunicorn.app.base.BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._factory()


def serve(factory: Callable[[], Flask], *, port: int, workers: int, timeout: int = 120) -> None:
    """Run the app from ``factory`` on gunicorn (threaded workers suit streaming uploads)."""
    _Gunicorn(
        factory,
        {
            "bind": f"0.0.0.0:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": 8,
            "timeout": timeout,
            "graceful_timeout": 30,
            "accesslog": None,
            "errorlog": "-",
            # No control socket: it lives in $HOME, which is shared or read-only in containers.
            "control_socket_disable": True,
        },
    ).run()
