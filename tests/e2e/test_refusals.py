"""Refusals reach every client: an upload refused before its body is read (422 for a bad option,
413 for its size or the quota) is read as that answer by Python's urllib, Go's net/http,
requests, httpx and curl, against gunicorn (``serve gateway`` behind ``serve auth``) and
werkzeug's server (``video2mp3 dev``). urllib and Go send the whole body before they read a byte
of the answer: the server reads and discards the rest of a refused body, within bounds, before it
closes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from tests.e2e.flow import sign_up
from tests.support import free_port, missing, need, rss, wait_for
from video2mp3 import signing
from video2mp3.auth.keys import generate
from video2mp3.lingering import LINGER_BYTES, LINGER_SECONDS

MAX_UPLOAD = 32 * 1024 * 1024
QUOTA = 20 * 1000 * 1000
BOUNDARY = "refusalBoundary7"
# Bodies well past what the kernel's socket buffers hold, so that a client that writes the whole
# body before reading fails unless the server reads it: two under MAX_UPLOAD (one over QUOTA),
# one over it.
REFUSALS = {
    "bad_option": ("?bitrate=999", 28 * 1000 * 1000, 422, "invalid_request"),
    "over_quota": ("", 28 * 1000 * 1000, 413, "quota_exceeded"),
    "too_large": ("", 40 * 1000 * 1000, 413, "too_large"),
}
PART_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
    "Content-Type: video/mp4\r\n\r\n"
).encode()


@dataclass
class Stack:
    kind: str
    port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # a signed-up user's

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        """Resident memory of the processes that answer, with their workers, in bytes."""
        return sum(rss(proc.pid) for proc in self.procs)


@pytest.fixture(scope="module", params=["dev", "gunicorn"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(request.param)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIDEO2MP3_")},
        "VIDEO2MP3_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "VIDEO2MP3_QUOTA_BYTES": str(QUOTA),
        "VIDEO2MP3_WEB_WORKERS": "1",
    }
    stack = Stack(request.param)

    def start(name: str, *command: str) -> int:
        port = free_port()
        with (tmp / f"{name}.log").open("wb") as log:  # the server keeps its own copy open
            stack.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "video2mp3.cli", *command, "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok, 60, name)
        return port

    try:
        if request.param == "dev":
            stack.port = start("dev", "dev", "--data-dir", str(tmp / "var"))
        else:
            generate(tmp / "keys")
            signing.generate(tmp / "link-keys")
            env |= {
                "VIDEO2MP3_AUTH_DB_URL": f"sqlite:///{tmp}/auth.db",
                "VIDEO2MP3_JWT_KEY_DIR": str(tmp / "keys"),
                "VIDEO2MP3_JOBS_DB_URL": f"sqlite:///{tmp}/jobs.db",
                "VIDEO2MP3_LINK_KEY_DIR": str(tmp / "link-keys"),
                "VIDEO2MP3_BLOB_DIR": str(tmp / "blobs"),
            }
            auth = start("auth", "serve", "auth", "--admin-port", str(free_port()))
            env["VIDEO2MP3_AUTH_URL"] = f"http://127.0.0.1:{auth}"
            stack.port = start("gateway", "serve", "gateway", "--admin-port", str(free_port()))
        stack.headers = sign_up(stack.base, "ann@example.com")
        yield stack
    finally:
        for proc in stack.procs:
            proc.terminate()
        for proc in stack.procs:
            proc.wait(20)


@pytest.fixture(scope="module")
def bodies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A multipart upload of each size in ``REFUSALS``, as a file."""
    tmp = tmp_path_factory.mktemp("bodies")
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    made = {}
    for name, (_, size, _, _) in REFUSALS.items():
        made[name] = tmp / f"{name}.multipart"
        made[name].write_bytes(PART_HEAD + b"v" * size + tail)
    return made


@pytest.fixture(scope="module")
def go_post(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``post.go``, built with this machine's Go."""
    go = shutil.which("go")
    need("Go", lambda: go or missing("go"), "install Debian's golang-go")
    built = tmp_path_factory.mktemp("go") / "post"
    done = subprocess.run(
        [str(go), "build", "-o", str(built), str(Path(__file__).with_name("post.go"))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return built


Answer = tuple[int, Any]  # the status and the JSON body
Post = Callable[[str, dict[str, str], Path], Answer]


def by_urllib(url: str, headers: dict[str, str], body: Path) -> Answer:
    request = urllib.request.Request(url, data=body.read_bytes(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.load(refused)


def by_requests(url: str, headers: dict[str, str], body: Path) -> Answer:
    response = requests.post(url, data=body.read_bytes(), headers=headers, timeout=60)
    return response.status_code, response.json()


def by_httpx(url: str, headers: dict[str, str], body: Path) -> Answer:
    response = httpx.post(url, content=body.read_bytes(), headers=headers, timeout=60)
    return response.status_code, response.json()


def by_curl(url: str, headers: dict[str, str], body: Path) -> Answer:
    curl = shutil.which("curl")
    need("curl", lambda: curl or missing("curl"), "install curl")
    sent = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    return _run([str(curl), "-sS", "-w", "\n%{http_code}", *sent, "--data-binary", f"@{body}", url])


def by_go(post: Path, url: str, headers: dict[str, str], body: Path) -> Answer:
    return _run(
        [str(post), url, str(body), *(f"{name}: {value}" for name, value in headers.items())]
    )


def _run(command: list[str]) -> Answer:
    """What ``command`` prints: the answer's body, a line break and its status."""
    done = subprocess.run(command, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer, _, status = done.stdout.rpartition(b"\n")
    return int(status), json.loads(answer)


@pytest.fixture(params=["curl", "go", "httpx", "requests", "urllib"])
def post(request: pytest.FixtureRequest) -> Post:
    if request.param == "go":
        built = request.getfixturevalue("go_post")
        return lambda url, headers, body: by_go(built, url, headers, body)
    clients: dict[str, Post] = {
        "curl": by_curl,
        "httpx": by_httpx,
        "requests": by_requests,
        "urllib": by_urllib,
    }
    return clients[request.param]


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_refusal_before_the_body_reaches_the_client(
    stack: Stack, bodies: dict[str, Path], post: Post, refusal: str
) -> None:
    query, _, status, code = REFUSALS[refusal]
    headers = {**stack.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    answer = post(f"{stack.base}/api/v1/jobs{query}", headers, bodies[refusal])
    assert (answer[0], answer[1]["error"]["code"]) == (status, code), answer


def test_an_endless_refused_body_is_cut_off_without_growing_memory(stack: Stack) -> None:
    """A chunked body with no end: refused (422) after its first part's head, then discarded up
    to ``LINGER_BYTES``, in pieces, before the server closes."""
    head = (
        f"POST /api/v1/jobs?bitrate=999 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Authorization: {stack.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    ).encode()
    part = PART_HEAD + b"v" * (1024 * 1024)
    chunk = b"%x\r\n%s\r\n" % (len(part), part)
    filler = b"v" * (1024 * 1024)
    more = b"%x\r\n%s\r\n" % (len(filler), filler)
    before = stack.rss()
    answer = bytearray()
    sent = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", stack.port), 30) as sock:
        sock.sendall(head + chunk)
        reader = threading.Thread(target=lambda: answer.extend(_read_all(sock)))
        reader.start()
        peak = before
        try:
            while time.monotonic() - started < LINGER_SECONDS + 20:
                sock.sendall(more)
                sent += len(more)
                if sent % (16 * len(more)) == 0:
                    peak = max(peak, stack.rss())
        except OSError:
            pass  # the server closed the connection
        elapsed = time.monotonic() - started
        reader.join(30)
    after = stack.rss()
    head_of_answer, _, body = bytes(answer).partition(b"\r\n\r\n")
    assert head_of_answer.startswith(b"HTTP/1.1 422 "), bytes(answer)[:500]
    assert json.loads(body)["error"]["code"] == "invalid_request"
    mb = [round(n / 1e6) for n in (before, peak, after)]
    print(
        f"\n{stack.kind}: RSS under an endless body, before/during/after: {mb} MB;"
        f" {sent / 1e6:.0f} MB sent in {elapsed:.1f} s before the server closed"
    )
    assert elapsed < LINGER_SECONDS + 20, "the server never closed the connection"
    # What the kernel's socket buffers hold on both sides comes on top of what the server read.
    assert sent < LINGER_BYTES + 32 * 1024 * 1024
    assert max(peak, after) - before < 32 * 1024 * 1024, mb


def test_a_trickling_refused_body_is_cut_off_at_the_time_bound(stack: Stack) -> None:
    """A body sent a byte a second, refused (413) at once: the server closes after
    ``LINGER_SECONDS`` rather than read it for as long as the client cares to send."""
    head = (
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {10 * MAX_UPLOAD}\r\n"
        f"Authorization: {stack.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", stack.port), 30) as sock:
        sock.sendall(head)
        answer = _read_all(sock)  # the server says it is done writing, and reads on
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:500]
        try:
            while time.monotonic() - started < LINGER_SECONDS + 20:
                sock.sendall(b"v")
                time.sleep(1)
        except OSError:
            pass  # the server closed the connection
    elapsed = time.monotonic() - started
    print(f"\n{stack.kind}: a byte a second, cut off after {elapsed:.1f} s")
    assert elapsed < LINGER_SECONDS + 20, "the server never closed the connection"


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
