"""The HTTP servers under our apps, made to hold against slow and malformed clients.

Gunicorn (production) and werkzeug's server (``video2mp3 dev``) both answer some requests before
our app sees them: a request line or headers over their limits (414, 431), a request they cannot
parse (400). Both write HTML for those; here they write the JSON every other error has. Both would
also wait forever for a client that sends half a request and stalls, holding a thread: a socket
timeout bounds every read (the request line, the headers and the body alike). Neither says which
version it is in ``Server``.
"""

from __future__ import annotations

import io
import json
import socket
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from gunicorn.http.body import Body, LengthReader
from gunicorn.http.errors import (
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.serving import WSGIRequestHandler

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# Seconds a client may stay silent while it sends its request or reads our answer.
CLIENT_TIMEOUT = 30
SERVER_NAME = "video2mp3"
# What the dev server reads of a body the app left unread (a refused one), and in what pieces.
DRAIN_BYTES = 1024 * 1024
DRAIN_PIECE = 64 * 1024

_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def error_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer with our JSON error body, closing the connection."""
    code = _CODES.get(status, "bad_request")
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _TimedConn(TConn):  # type: ignore[misc]
    client_timeout: float = CLIENT_TIMEOUT

    def init(self) -> None:
        super().init()
        # gunicorn makes the socket blocking, without a timeout, before each request.
        self.sock.settimeout(self.client_timeout)


class _SocketBody(Body):  # type: ignore[misc]
    """gunicorn's request body of known length, received straight into the bytes ``read``
    returns instead of through gunicorn's buffers, which copy each byte about six times: a
    570 MB body then takes 0.17 s of CPU to read instead of 0.35 s. ``read(size)`` still
    gathers ``size`` bytes (or the rest of the body), as callers expect; what gunicorn read
    past the headers is handed over first, and what lies beyond the body is left to the next
    request."""

    reader: LengthReader

    def read(self, size: int | None = None) -> bytes:
        if size is None or size < 0 or self.buf.tell():  # all of it, or after a readline()
            data: bytes = super().read(size)
            return data
        wanted: int = min(size, self.reader.length)
        buffer, got = bytearray(wanted), 0
        unreader: SocketUnreader = self.reader.unreader
        try:
            if held := unreader.take_buffered():
                got = min(len(held), wanted)
                buffer[:got] = held[:got]
                if len(held) > got:
                    unreader.unread(held[got:])
            with memoryview(buffer) as view:
                while got < wanted:  # the socket's timeout bounds each wait
                    if not (count := unreader.sock.recv_into(view[got:])):
                        break  # the client went away: a short body, as gunicorn gives
                    got += count
        except Exception:
            self.failed = True  # where the next request starts is unknown: close after this
            raise
        self.reader.length -= got
        del buffer[got:]
        return bytes(buffer)


class Worker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker with a read timeout per client, JSON error answers, and
    request bodies read with fewer copies (``_SocketBody``).

    ``serve`` subclasses it with the configured ``client_timeout``.
    """

    client_timeout: float = CLIENT_TIMEOUT

    def handle_request(self, req: Any, conn: TConn) -> Any:
        reader = req.body.reader
        plain = type(req.body) is Body and type(reader) is LengthReader
        if plain and isinstance(reader.unreader, SocketUnreader):  # nothing read from it yet
            req.body = _SocketBody(reader)
        return super().handle_request(req, conn)

    def enqueue_req(self, conn: TConn) -> None:
        # TConn has no hook of its own for its socket: the subclass adds the timeout.
        conn.__class__ = _TimedConn
        conn.client_timeout = self.client_timeout
        super().enqueue_req(conn)

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: Exception) -> None:
        # A header our app tried to send is our fault, not the client's.
        ours = isinstance(exc, (InvalidResponseHeader, InvalidResponseHeaderName))
        if isinstance(exc, LimitRequestLine):
            status, reason, message = 414, "URI Too Long", "the request line is too long"
        elif isinstance(exc, LimitRequestHeaders):
            status, reason = 431, "Request Header Fields Too Large"
            message = "too many request headers, or one too large"
        elif isinstance(exc, UnsupportedTransferCoding):
            status, reason, message = 501, "Not Implemented", str(exc)
        elif isinstance(exc, ParseException) and not ours:
            status, reason, message = 400, "Bad Request", f"malformed request: {exc}"
        else:
            self.log.exception("error handling a request")
            status, reason = 500, "Internal Server Error"
            message = "internal error; the request id is in the logs"
        if status < 500:
            self.log.warning("invalid request from %s: %s", (addr or ("",))[0], exc)
        try:
            client.sendall(error_response(status, reason, message))
        except OSError:
            self.log.debug("could not send the error answer")


class _Drain(io.BufferedIOBase):
    """What werkzeug's server reads after the answer: at most ``budget`` bytes, in small pieces."""

    def __init__(self, raw: io.BufferedIOBase, budget: int) -> None:
        super().__init__()
        self.raw, self.budget = raw, budget

    def read(self, size: int | None = -1) -> bytes:
        wanted = self.budget if size is None or size < 0 else size
        data = self.raw.read(min(wanted, self.budget, DRAIN_PIECE)) if self.budget else b""
        self.budget -= len(data)
        return data


class DevRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler with a read timeout, JSON errors and no version banner.

    After each answer werkzeug reads whatever body the app left unread, 10 MB per read and up to
    10 GB, so that the client sees the answer rather than a reset: a refused 300 MB body would
    flow through memory in 10 MB blocks (its RSS grew by about 80 MB). Here that read stops after
    ``DRAIN_BYTES``, in pieces of ``DRAIN_PIECE``, and the connection closes.
    """

    timeout = CLIENT_TIMEOUT  # applied to the socket by StreamRequestHandler.setup

    def make_environ(self) -> WSGIEnvironment:
        environ = super().make_environ()  # the app reads the body from the socket's own file
        self.rfile = _Drain(self.rfile, DRAIN_BYTES)  # the server, after the app: bounded
        return environ

    def version_string(self) -> str:
        return SERVER_NAME

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        reason = self.responses.get(code, ("Error", ""))[0]
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self.wfile.write(error_response(code, reason, message or reason))


class AdminRequestHandler(BaseHTTPRequestHandler):
    """The admin listener's handler (``health``): the same timeouts, errors and no banner."""

    timeout = CLIENT_TIMEOUT

    def version_string(self) -> str:
        return SERVER_NAME

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        reason = self.responses.get(code, ("Error", ""))[0]
        self.close_connection = True
        self.wfile.write(error_response(code, reason, message or reason))
