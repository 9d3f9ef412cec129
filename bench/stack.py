"""The stacks a benchmark runs: ``video2mp3 dev`` (``make run``), or the distributed processes
(auth, the gateway, its worker, converters) on this machine's RabbitMQ and MariaDB and a local
SMTP sink, each under names of its own (databases, queue prefix), removed after. Blobs go to a
shared directory (``VIDEO2MP3_BLOB_DIR``) unless ``gridfs=True`` starts an nx-27017 MongoDB wire
server, which cannot serve files over about 45 MB (docs: DESIGN.md): large inputs need the
directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import requests
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from video2mp3 import signing
from video2mp3.auth.keys import generate
from video2mp3.ports.bus import QUEUES

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} after {timeout} s")


class Stack:
    """Running services; ``start(service)`` adds one, ``url`` is the gateway's."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "VIDEO2MP3_LOG_LEVEL": "WARNING"}
        self.env.setdefault("VIDEO2MP3_MAX_ACTIVE_JOBS", "1000")  # one user queues whole batches
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.admin_ports: dict[str, int] = {}

    def start(self, service: str, name: str | None = None) -> None:
        name = name or service
        port = self.ports[name] = free_port()
        # Probes are on the admin listener: the web services' own port, the workers' only one.
        admin = self.admin_ports[name] = free_port() if service in ("auth", "gateway") else port
        log = (self.root / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", "serve", service,
             "--port", str(port), "--admin-port", str(admin)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(lambda: requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=2).ok, 60, name)
        if service == "auth":
            self.env["VIDEO2MP3_AUTH_URL"] = f"http://127.0.0.1:{port}"

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        proc.wait(60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def pids(self, name: str) -> list[int]:
        """The process and its children (gunicorn's workers)."""
        root = self.procs[name].pid
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
        return [root, *map(int, children)]


@contextlib.contextmanager
def embedded(env: dict[str, str] | None = None) -> Iterator[Stack]:
    """``video2mp3 dev`` on a free port with its data in a temporary folder (and ``env``)."""
    root = Path(tempfile.mkdtemp(prefix="v2m-bench-"))
    stack = Stack(root, env or {})
    port = stack.ports["gateway"] = free_port()
    stack.procs["gateway"] = subprocess.Popen(
        [sys.executable, "-m", "video2mp3.cli", "dev", "--port", str(port),
         "--data-dir", str(root / "var")],
        env=stack.env,
        stdout=(root / "dev.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: requests.get(f"{stack.url}/healthz", timeout=2).ok, 60, "dev")
        yield stack
    finally:
        stack.stop("gateway")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def distributed(*, gridfs: bool = False, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """auth, gateway and gateway-worker running (start converters yourself), with ``env``."""
    suffix = uuid.uuid4().hex[:8]
    prefix = f"v2m-bench-{suffix}"
    engine = sa.create_engine(MYSQL_URL)
    databases = [f"v2m_bench_{suffix}_{name}" for name in ("auth", "jobs")]
    with engine.begin() as conn:
        for database in databases:
            conn.execute(sa.text(f"CREATE DATABASE {database}"))
    smtp = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    root = Path(tempfile.mkdtemp(prefix="v2m-bench-"))
    blobs = {"VIDEO2MP3_BLOB_DIR": str(root / "blobs")}
    nx = None
    if gridfs:
        nx_port = free_port()
        nx_binary = shutil.which("nx-27017") or str(Path(sys.executable).parent / "nx-27017")
        nx = subprocess.Popen(
            [nx_binary, "--db", str(root / "nx.sqlite"), "-p", str(nx_port),
             "--log-file", str(root / "nx.log"), "--pid-file", str(root / "nx.pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        blobs = {"VIDEO2MP3_MONGODB_URL": f"mongodb://127.0.0.1:{nx_port}/bench"}
    generate(root / "keys")
    signing.generate(root / "link-keys")
    stack = Stack(
        root,
        {
            "VIDEO2MP3_AUTH_DB_URL": f"{MYSQL_URL}/{databases[0]}",
            "VIDEO2MP3_JOBS_DB_URL": f"{MYSQL_URL}/{databases[1]}",
            "VIDEO2MP3_BROKER_URL": AMQP_URL,
            "VIDEO2MP3_BROKER_PREFIX": prefix,
            **blobs,
            "VIDEO2MP3_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
            "VIDEO2MP3_JWT_KEY_DIR": str(root / "keys"),
            "VIDEO2MP3_LINK_KEY_DIR": str(root / "link-keys"),
            "VIDEO2MP3_WEB_WORKERS": "2",
            **(env or {}),
        },
    )
    try:
        for service in ("auth", "gateway", "gateway-worker"):
            stack.start(service)
        yield stack
    finally:
        for name in list(stack.procs):
            stack.stop(name)
        if nx is not None:
            nx.terminate()
            nx.wait(10)
        smtp.stop()
        with pika.BlockingConnection(pika.URLParameters(AMQP_URL)) as connection:
            channel = connection.channel()
            for queue in [*QUEUES, "dead"]:
                channel.queue_delete(f"{prefix}.{queue}")
            channel.exchange_delete(prefix)
            channel.exchange_delete(f"{prefix}.dlx")
        with engine.begin() as conn:
            for database in databases:
                conn.execute(sa.text(f"DROP DATABASE {database}"))
        shutil.rmtree(root, ignore_errors=True)


def sign_up(base: str, address: str = "bench@example.com") -> dict[str, str]:
    body = {"email": address, "password": "pw-123456"}
    requests.post(f"{base}/api/v1/users", json=body, timeout=30).raise_for_status()
    token = requests.post(f"{base}/login", auth=(address, "pw-123456"), timeout=30)
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.text}"}
