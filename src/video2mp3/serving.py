"""The HTTP servers under our apps, made to hold against slow and malformed clients.

Gunicorn (production) and werkzeug's server (``video2mp3 dev``) both answer some requests before
our app sees them: a request line or headers over their limits (414, 431), a request they cannot
parse (400). Both write HTML for those; here they write the JSON every other error has. Both would
also wait forever for a client that sends half a request and stalls, holding a thread: a socket
timeout bounds every read (the request line, the headers and the body alike). Neither says which
version it is in ``Server``. An answer given before the app read the whole body (a refusal) closes
the connection after ``linger``, which reads and discards the rest of the body within bounds, as
nginx's lingering close does: a client that sends its whole body before it reads (Python's
urllib, Go's net/http) then gets the answer instead of a broken pipe.
"""

from __future__ import annotations

import io
import json
import socket
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.errors import (
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    NoMoreData,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.http.message import Request
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.serving import DechunkedInput, WSGIRequestHandler
from werkzeug.wsgi import get_content_length

from video2mp3.errors import InvalidRequest
from video2mp3.lingering import linger
from video2mp3.logs import redact

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# Seconds a client may stay silent while it sends its request or reads our answer.
CLIENT_TIMEOUT = 30
SERVER_NAME = "video2mp3"
MALFORMED_CHUNKS = (
    "the chunked request body is malformed or ends early: each chunk starts with its size in"
    " hexadecimal on a line of its own, and a chunk of size 0 ends the body"
)

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


def _unread(body: Body) -> int | None:
    """The bytes of ``body`` the app left unread: 0 when it read the whole body, or there is none;
    ``None`` when how many is unknown (a chunked body it did not read to its end)."""
    reader = body.reader
    if isinstance(reader, LengthReader):
        return int(reader.length)
    if isinstance(reader, ChunkedReader):
        return None if reader.parser else 0
    return 0


class _Request(Request):  # type: ignore[misc]
    """gunicorn's request, whose answer says ``Connection: close`` when it is given before the app
    read the whole body: the connection then ends with ``linger`` (``Worker.handle_request``)."""

    def should_close(self) -> bool:
        return _unread(self.body) != 0 or bool(super().should_close())


class _TimedConn(TConn):  # type: ignore[misc]
    client_timeout: float = CLIENT_TIMEOUT
    lingered = False

    def init(self) -> None:
        super().init()
        # gunicorn makes the socket blocking, without a timeout, before each request.
        self.sock.settimeout(self.client_timeout)

    def close(self, graceful: bool = False) -> None:
        # After linger() gunicorn's graceful close would wait for the client once more, up to 2 s,
        # on the worker's main thread, which serves every connection's events.
        super().close(graceful and not self.lingered)


class _ChunkedBody(Body):  # type: ignore[misc]
    """gunicorn's chunked request body, whose format errors (a chunk size that is no hexadecimal
    number, a missing line end, the body ending early) reach the app as ``InvalidRequest``: the
    client's mistake, a 422 like any malformed body, not a 500 with a traceback."""

    def _read_reader(self, size: int) -> bytes:
        try:
            data: bytes = super()._read_reader(size)
        except (ParseException, NoMoreData):
            raise InvalidRequest(MALFORMED_CHUNKS) from None
        return data


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
    """gunicorn's threaded worker with a read timeout per client, JSON error answers, request
    bodies read with fewer copies (``_SocketBody``), and a ``linger`` after an answer given before
    the app read the whole body, in the request's thread; such a connection is never reused.

    ``serve`` subclasses it with the configured ``client_timeout``.
    """

    client_timeout: float = CLIENT_TIMEOUT

    def handle_request(self, req: Any, conn: _TimedConn) -> Any:
        reader = req.body.reader
        plain = type(req.body) is Body and type(reader) is LengthReader
        if plain and isinstance(reader.unreader, SocketUnreader):  # nothing read from it yet
            req.body = _SocketBody(reader)
        elif type(req.body) is Body and type(reader) is ChunkedReader:
            req.body.__class__ = _ChunkedBody
        if type(req) is Request:
            req.__class__ = _Request
        keepalive = super().handle_request(req, conn)
        if (rest := _unread(req.body)) == 0:
            return keepalive
        held = len(req.unreader.take_buffered())  # received already, as part of the body
        linger(conn.sock, None if rest is None else max(0, rest - held))
        conn.lingered = True
        return False

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
            self.log.warning("invalid request from %s: %s", (addr or ("",))[0], redact(str(exc)))
        try:
            client.sendall(error_response(status, reason, message))
        except OSError:
            self.log.debug("could not send the error answer")


class _Counted(io.RawIOBase):
    """The socket's file as the app reads a body of known length from it, counting the bytes."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__()
        self.file, self.count = file, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.file.readinto(buffer)
        self.count += count
        return count


class _Dechunked(DechunkedInput):
    """werkzeug's chunked body, whose format errors reach the app as ``InvalidRequest`` (as on
    gunicorn: ``_ChunkedBody``) rather than the ``OSError`` it raises for them."""

    def readinto(self, buf: Any) -> int:
        try:
            return super().readinto(buf)
        except OSError as exc:
            if type(exc) is not OSError:  # the socket's own: a timeout, a reset
                raise
            raise InvalidRequest(MALFORMED_CHUNKS) from None


class _Spent(io.BufferedIOBase):
    """What werkzeug's server reads after the answer: nothing, as ``linger`` did that."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__()
        self.file = file

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def close(self) -> None:
        self.file.close()
        super().close()


class DevRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler with a read timeout, JSON errors and no version banner.

    After each answer werkzeug reads whatever the client sends within 10 ms of the last read, 10 MB
    per read and up to 10 GB: a refused 300 MB body would flow through memory in 10 MB blocks (its
    RSS grew by about 80 MB), and a client a little slower is reset. Here ``linger`` reads the rest
    of the body instead, as on gunicorn.
    """

    timeout = CLIENT_TIMEOUT  # applied to the socket by StreamRequestHandler.setup

    def make_environ(self) -> WSGIEnvironment:
        environ = super().make_environ()
        self.body = _Counted(self.rfile)
        if environ["wsgi.input"] is self.rfile:  # not a chunked body, which werkzeug wraps
            environ["wsgi.input"] = self.body
        elif type(environ["wsgi.input"]) is DechunkedInput:
            environ["wsgi.input"].__class__ = _Dechunked
        self.rfile = _Spent(self.rfile)  # what werkzeug reads after the answer
        return environ

    def run_wsgi(self) -> None:
        super().run_wsgi()
        if self.environ.get("wsgi.input_terminated"):  # chunked: how much is left is unknown
            rest = None
        else:
            rest = max(0, (get_content_length(self.environ) or 0) - self.body.count)
        if rest != 0:
            linger(self.connection, rest, self.body.file.readinto1)

    def version_string(self) -> str:
        return SERVER_NAME

    def log(self, type: str, message: str, *args: Any) -> None:
        # werkzeug's own lines (a malformed request's) quote the request line.
        super().log(type, "%s", redact(message % args if args else message))

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
