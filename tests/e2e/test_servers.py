"""Hostile clients against the real servers: gunicorn (``serve auth``) and werkzeug's
(``video2mp3 dev``). Over-long request lines and headers get JSON 414/431, stalled clients are cut
off, a 300 MB JSON body is refused without the server's memory growing, and no version banner."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support import free_port, rss, wait_for
from video2mp3.auth.keys import generate
from video2mp3.lingering import LINGER_BYTES

CLIENT_TIMEOUT = 1  # seconds, so that a stalled client is cut off quickly here
SIGNUP = {"dev": "/api/v1/users", "gunicorn": "/users"}


@dataclass
class Server:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]

    def rss(self) -> int:
        """Resident memory of the server and its worker processes, in bytes."""
        return rss(self.proc.pid)


@pytest.fixture(params=["dev", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIDEO2MP3_")},
        "VIDEO2MP3_CLIENT_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT),
    }
    if request.param == "dev":
        command = ["dev", "--port", str(port), "--data-dir", str(tmp_path / "var")]
    else:
        generate(tmp_path / "keys")
        env |= {
            "VIDEO2MP3_AUTH_DB_URL": f"sqlite:///{tmp_path}/auth.db",
            "VIDEO2MP3_JWT_KEY_DIR": str(tmp_path / "keys"),
            "VIDEO2MP3_WEB_WORKERS": "1",
        }
        command = ["serve", "auth", "--port", str(port)]
    with (tmp_path / "server.log").open("wb") as log:  # the server keeps its own copy open
        proc = subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", *command], env=env, stdout=log, stderr=log
        )
    try:
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok, 60, "server"
        )
        yield Server(request.param, port, proc)
    finally:
        proc.terminate()
        proc.wait(20)


def exchange(server: Server, raw: bytes) -> bytes:
    """Send ``raw`` and read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), answer[:500]
    return int(head.split()[1]), json.loads(body)["error"]["code"]


def test_an_overlong_request_line_is_414_json(server: Server) -> None:
    answer = exchange(server, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_and_error(answer) == (414, "uri_too_long")


def test_an_overlong_header_is_431_json(server: Server) -> None:
    answer = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n")
    assert status_and_error(answer) == (431, "headers_too_large")


def test_a_malformed_request_is_400_json(server: Server) -> None:
    answer = exchange(server, b"NONSENSE\r\n\r\n")
    assert status_and_error(answer) == (400, "bad_request")


def test_no_version_banner(server: Server) -> None:
    response = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
    assert "/" not in response.headers.get("Server", ""), response.headers["Server"]
    assert "Python" not in response.headers.get("Server", "")


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # headers never end
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",  # the body never comes
    ],
)
def test_a_stalled_client_is_cut_off(server: Server, partial: bytes) -> None:
    # The server closes the connection itself: the read ends with EOF long before the
    # socket's own 30 s timeout, which would fail the test.
    answer = exchange(server, partial.replace(b"/api/v1/users", SIGNUP[server.kind].encode()))
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:200]


def test_a_300_mb_json_body_is_refused_without_growing_memory(server: Server) -> None:
    before = server.rss()
    size = 300 * 1024 * 1024
    answer = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            f"POST {SIGNUP[server.kind]} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        reader = threading.Thread(target=lambda: answer.extend(_read_all(sock)))
        reader.start()
        chunk = b'{"email": "' + b"x" * (1024 * 1024 - 11)
        sent = 0
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server read what it discards of a refused body, and closed the connection
        peak = server.rss()
        reader.join(30)
    after = server.rss()
    assert status_and_error(bytes(answer)) == (413, "too_large")
    growth = max(peak, after) - before
    mb = [round(n / 1e6) for n in (before, peak, after)]
    print(
        f"\n{server.kind}: RSS under a 300 MB JSON body, before/during/after: {mb} MB;"
        f" {sent / 1e6:.0f} MB sent before the server closed"
    )
    assert growth < 64 * 1024 * 1024, mb
    # What the kernel's socket buffers hold on both sides comes on top of what the server read.
    assert sent < LINGER_BYTES + 32 * 1024 * 1024, "the server read the whole refused body"


def test_a_body_is_read_to_its_length_and_the_next_request_is_answered(server: Server) -> None:
    # Part of the body comes with the headers (gunicorn already holds it), the rest with the
    # next request pipelined behind it: each byte must go to the request it belongs to.
    body = json.dumps({"email": "pipelined@example.com", "password": "a good long password"})
    first = (
        f"POST {SIGNUP[server.kind]} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body[:10]}"
    ).encode()
    second = f"{body[10:]}GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(first)
        sock.sendall(second)
        answer = _read_all(sock)
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]
    # werkzeug's server closes the connection after each answer; gunicorn keeps it open.
    assert statuses == ([201] if server.kind == "dev" else [201, 200]), answer[:1000]


def test_a_json_body_that_arrives_in_pieces_is_read_whole(server: Server) -> None:
    body = json.dumps({"email": "pieces@example.com", "password": "a good long password"})
    head = (
        f"POST {SIGNUP[server.kind]} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100")  # the app is reading the body
        for piece in (body[:10], body[10:]):
            sock.sendall(piece.encode())
            time.sleep(0.2)  # so that the server receives each piece on its own
        answer = _read_all(sock)
    final = [code for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) if code != b"100"]
    assert final == [b"201"], answer[:1000]


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\n{}\r\n0\r\n\r\n", b"-2\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"ffff\r\n{"],
)
def test_a_malformed_chunked_body_is_a_json_refusal_without_a_traceback(
    server: Server, chunks: bytes, tmp_path: Path
) -> None:
    head = (
        f"POST {SIGNUP[server.kind]} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + chunks)
        if not chunks.endswith(b"\r\n\r\n"):
            sock.shutdown(socket.SHUT_WR)  # the body ends early
        answer = _read_all(sock)
    assert status_and_error(answer) == (422, "invalid_request"), answer[:500]
    assert b"the chunked request body is malformed or ends early" in answer
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log
    assert "internal_error" not in log
    assert "unhandled error" not in log


def test_download_tokens_stay_out_of_the_access_log(server: Server, tmp_path: Path) -> None:
    secret = "7.5f0c1d.1765000000.c2VjcmV0LXNpZ25hdHVyZQ"
    for path in (f"/mp3/{secret}", f"/mp3/{secret}/", f"/healthz?token={secret}&x=1"):
        requests.get(f"http://127.0.0.1:{server.port}{path}", timeout=10)
    exchange(server, f"GET /mp3/{secret} HTTP/1.1 junk\r\n\r\n".encode())  # a malformed line
    log = (tmp_path / "server.log").read_text()
    assert "/mp3/[redacted]" in log
    assert secret not in log
