"""What every HTTP service shares: JSON errors, request ids, request metrics, gunicorn.

``install(app, health)`` gives a Flask app its error handlers, request ids and access logs, and a
constant ``/healthz`` on the public port (for a load balancer that can reach nothing else); the
real probes and ``/metrics`` are on ``health``'s admin listener (``video2mp3.health``). ``serve``
binds that listener's socket in gunicorn's master and answers on it in each worker, beside the
app the worker builds, so that no connection crosses a fork.
Every body is limited to ``MAX_BODY_BYTES`` unless its view is marked ``@streams_body`` (uploads
count their own bytes); JSON is read only through ``json_body``, which bounds its nesting too.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any, TypeVar

import gunicorn.app.base
from flask import Flask, Response, g, jsonify, request
from prometheus_client import Counter, Gauge, Histogram
from werkzeug.exceptions import HTTPException

from video2mp3 import logs
from video2mp3.errors import InvalidRequest, TooLarge, Unauthorized, Video2mp3Error, http_status
from video2mp3.health import Health, listen
from video2mp3.serving import CLIENT_TIMEOUT, Worker

log = logging.getLogger(__name__)

HEALTH = "video2mp3.health"  # the app's Health, in app.extensions
# Callables an app lists under this extension run when its gunicorn worker is told to stop, so
# that long requests (the page's event streams) end at once instead of after drain_seconds.
ON_STOP = "video2mp3.on_stop"
View = TypeVar("View", bound=Callable[..., Any])

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
# What a client may call its request: anything else is replaced by an id of ours.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_JSON_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
# Stable codes for the errors werkzeug raises itself, where its name is not one already.
_HTTP_CODES = {413: "too_large", 408: "request_timeout"}

# Busy request threads: I/O-bound saturation (slow transfers) that CPU does not show.
IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being served")
REQUESTS = Counter("http_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram("http_request_seconds", "HTTP request latency", ["endpoint"])


def basic_credentials() -> tuple[str, str]:
    """Email and password from HTTP Basic authentication; ``Unauthorized`` without them."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        raise Unauthorized("send your email and password with HTTP Basic authentication")
    return auth.username, auth.password or ""


def streams_body(view: View) -> View:
    """Mark ``view`` as reading a large body itself, past ``MAX_BODY_BYTES``."""
    view.streams_body = True  # type: ignore[attr-defined]
    return view


def json_body() -> object:
    """The request's JSON: ``TooLarge`` past ``MAX_BODY_BYTES``, ``InvalidRequest`` if it is not
    JSON or is nested deeper than ``MAX_JSON_DEPTH`` (the parser recurses per level). Bounded
    on every route, ``@streams_body`` ones too (an upload may name its file in JSON instead)."""
    too_large = TooLarge(f"a JSON body may have at most {MAX_BODY_BYTES} bytes")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise too_large
    raw = request.stream.read(MAX_BODY_BYTES + 1)  # a chunked body says no length
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    if _depth(raw) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON") from None


def _depth(raw: bytes) -> int:
    deepest = depth = 0
    for byte in _JSON_STRINGS.sub(b'""', raw):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def credentials_body() -> tuple[str, str]:
    """Email and password from a JSON body; ``InvalidRequest`` if it is not that."""
    body = json_body()
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) for k in ("email", "password")
    ):
        raise InvalidRequest('send a JSON object {"email": "...", "password": "..."}')
    return body["email"], body["password"]


def json_error(status: int, code: str, message: str) -> Response:
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    return response


def install(app: Flask, health: Health) -> None:
    """Add error handlers, request ids, access logs and metrics to ``app``; keep its ``health``."""
    app.extensions[HEALTH] = health
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # also bounds chunked bodies

    @app.before_request
    def _start() -> None:
        IN_FLIGHT.inc()
        g.in_flight = True
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        logs.correlation_id.set(g.request_id)
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "streams_body", False):
            # The view counts the bytes itself (None would mean the app's MAX_CONTENT_LENGTH).
            request.max_content_length = sys.maxsize
        elif (request.content_length or 0) > MAX_BODY_BYTES:
            raise TooLarge(f"the body exceeds the limit of {MAX_BODY_BYTES} bytes")

    @app.after_request
    def _finish(response: Response) -> Response:
        endpoint = request.endpoint or "unknown"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        REQUESTS.labels(endpoint, request.method, response.status_code).inc()
        LATENCY.labels(endpoint).observe(elapsed)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if endpoint != "healthz":
            log.info(
                "%s %s %s",
                request.method,
                logs.redact(request.path),
                response.status_code,
                extra={"duration_ms": round(elapsed * 1000, 1)},
            )
        return response

    @app.errorhandler(Video2mp3Error)
    def _known(error: Video2mp3Error) -> Response:
        status = http_status(error)
        if status >= 500:
            log.error("request failed: %s", error.message, extra={"code": error.code})
        response = json_error(status, error.code, error.message)
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status) or (error.name or "error").lower().replace(" ", "_")
        response = json_error(status, code, error.description or code)
        for name, value in error.get_headers():  # Allow on a 405, Retry-After...
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(TimeoutError)
    def _timeout(error: TimeoutError) -> Response:
        # A raw socket timeout here is the client's socket going silent mid-body (the adapters
        # turn their own timeouts into Unavailable).
        response = json_error(408, "request_timeout", "the client stopped sending its request")
        response.headers["Connection"] = "close"
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return json_error(500, "internal_error", "internal error; the request id is in the logs")

    @app.teardown_request
    def _end(_: BaseException | None) -> None:
        if g.pop("in_flight", False):
            IN_FLIGHT.dec()

    @app.get("/healthz")
    def healthz() -> Response:
        """The process answers (the probes use the admin listener)."""
        return jsonify(status="ok")


class _Gunicorn(gunicorn.app.base.BaseApplication):  # type: ignore[misc]
    def __init__(
        self, factory: Callable[[], Flask], admin: ThreadingHTTPServer, options: dict[str, Any]
    ) -> None:
        self._factory = factory
        self._admin = admin
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        app = self._factory()  # in the worker process, after the fork
        health: Health = app.extensions[HEALTH]
        health.serve(self._admin)
        return app


def _on_stop_too(worker: Any) -> None:
    """gunicorn's ``post_worker_init``: SIGTERM also runs the app's ``ON_STOP`` callables."""
    callbacks = worker.wsgi.extensions.get(ON_STOP, [])
    handle_exit = worker.handle_exit

    def on_sigterm(signum: int, frame: Any) -> None:
        for callback in callbacks:
            callback()
        handle_exit(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    # signal.signal makes the signal interrupt system calls again; gunicorn had turned that off
    # so that SIGTERM does not disturb the requests in flight.
    signal.siginterrupt(signal.SIGTERM, False)


def serve(
    factory: Callable[[], Flask],
    *,
    port: int,
    admin_port: int,
    workers: int,
    threads: int,
    drain_seconds: int,
    timeout: int = 120,
    client_timeout: float = CLIENT_TIMEOUT,
) -> None:
    """Run the app from ``factory`` on gunicorn (threaded workers suit streaming uploads).

    On SIGTERM, requests in flight get ``drain_seconds`` to finish before they are cut. A client
    silent for ``client_timeout`` seconds mid-request is cut off (``serving.Worker``).
    """
    worker = type("Worker", (Worker,), {"client_timeout": client_timeout})
    _Gunicorn(
        factory,
        listen(admin_port),
        {
            "bind": f"0.0.0.0:{port}",
            "workers": workers,
            "worker_class": worker,
            "threads": threads,
            "timeout": timeout,
            "graceful_timeout": drain_seconds,
            "accesslog": None,
            "errorlog": "-",
            # No control socket: it lives in $HOME, which is shared or read-only in containers.
            "control_socket_disable": True,
            "post_worker_init": _on_stop_too,
        },
    ).run()
