"""``linger`` on a socket pair: it half-closes, then discards the rest of a body up to its length,
its byte bound, its time bound or the client's silence, whichever comes first."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from video2mp3 import lingering
from video2mp3.lingering import linger


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.settimeout(30)
    with server, client:
        yield server, client


def test_it_half_closes_and_discards_the_rest_of_the_body_only(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    client.sendall(b"b" * 100_000 + b"GET /next")  # the body's rest, then what follows it
    assert linger(server, 100_000) == 100_000
    assert client.recv(10) == b""  # the answer is complete
    assert server.recv(100) == b"GET /next"


def test_a_body_of_unknown_length_is_read_until_the_client_closes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    client.sendall(b"b" * 1000)
    client.shutdown(socket.SHUT_WR)
    assert linger(server, None) == 1000


def test_it_stops_at_the_byte_bound(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lingering, "LINGER_BYTES", 10_000)
    server, client = pair
    client.sendall(b"b" * 50_000)
    assert linger(server, None) == 10_000
    assert len(server.recv(50_000)) == 40_000  # left to the close, which resets the connection


def test_a_byte_at_a_time_stops_at_the_time_bound(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lingering, "LINGER_SECONDS", 0.5)
    server, client = pair
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            client.send(b"b")
            time.sleep(0.05)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        discarded = linger(server, 1_000_000)
    finally:
        stop.set()
        sender.join()
    assert 0 < discarded < 1_000_000


def test_a_silent_client_is_left_after_the_pause(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lingering, "LINGER_PAUSE", 0.2)
    server, client = pair
    client.sendall(b"b" * 10)
    assert linger(server, 1000) == 10  # then nothing, for longer than the pause
