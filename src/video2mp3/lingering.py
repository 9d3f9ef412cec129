"""Lingering close: what a server does after an answer given before the app read the whole body.

A client that sends its whole body before it reads a byte of the answer (Python's urllib, Go's
net/http) gets a broken pipe, and no answer, if the server closes the connection with the body
still coming: the kernel resets a connection closed with unread data. nginx reads and discards
such a body for a while before it closes (``lingering_close``); ``linger`` does the same for
gunicorn and for werkzeug's server (``video2mp3.serving``), within bounds that keep a hostile
body cheap: a time, a byte count, a silence, and one small buffer.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

# At most LINGER_BYTES for at most LINGER_SECONDS, in pieces of LINGER_PIECE, each read waiting at
# most LINGER_PAUSE (or the socket's own timeout, if shorter). nginx's lingering_time is 30 s and
# its lingering_timeout 5 s. 64 MiB is half a second of a gigabit link, and costs no memory: the
# pieces are read into one buffer and dropped.
LINGER_SECONDS = 10
LINGER_BYTES = 64 * 1024 * 1024
LINGER_PAUSE = 5
LINGER_PIECE = 64 * 1024


def linger(
    sock: socket.socket, rest: int | None, receive: Callable[[memoryview], int] | None = None
) -> int:
    """Once the answer is sent: half-close ``sock``, so that the client sees the answer end, then
    read and discard the ``rest`` bytes of the request's body left unread (``None``: unknown, until
    the client closes), within the ``LINGER_*`` bounds; the bytes discarded. ``receive`` reads once
    into a buffer: the socket's ``recv_into``, or a file's ``readinto1`` that hands over what it
    holds first. The caller closes the socket: what is left unread then resets the connection."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return 0  # the client is gone
    receive = receive or sock.recv_into
    deadline = time.monotonic() + LINGER_SECONDS
    pause = min(LINGER_PAUSE, sock.gettimeout() or LINGER_PAUSE)
    budget = LINGER_BYTES if rest is None else min(rest, LINGER_BYTES)
    discarded = 0
    with memoryview(bytearray(LINGER_PIECE)) as piece:
        while discarded < budget and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(min(pause, left))  # so that a byte a second stops at the deadline
            try:
                count = receive(piece[: budget - discarded])
            except OSError:  # silent past the pause (TimeoutError), or reset
                break
            if not count:
                break  # the client closed its side
            discarded += count
    return discarded
