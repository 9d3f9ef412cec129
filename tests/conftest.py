"""Fixtures for every test layer: generated media and the real services on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pymongo
import pytest
import sqlalchemy as sa

from tests.support import (
    AMQP_URL,
    CORPUS,
    MYSQL_URL,
    SAMPLES,
    Receiver,
    free_port,
    make_sample,
    missing,
    need,
    wait_for,
)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def samples(media_dir: Path) -> dict[str, Path]:
    """Every generated sample, by name."""
    return {name: make_sample(sample, media_dir) for name, sample in SAMPLES.items()}


@pytest.fixture(scope="session")
def corpus(media_dir: Path) -> dict[str, Path]:
    """The generated edge cases, by name."""
    return {name: make_sample(sample, media_dir) for name, sample in CORPUS.items()}


@pytest.fixture(scope="session")
def amqp_url() -> str:
    need(
        "RabbitMQ",
        lambda: pika.BlockingConnection(pika.URLParameters(AMQP_URL)).close(),
        "start it with 'rabbitmq-server -detached' or set TEST_AMQP_URL",
    )
    return AMQP_URL


@pytest.fixture(scope="session")
def mysql_server() -> str:
    engine = sa.create_engine(MYSQL_URL)

    def probe() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    need("MySQL", probe, "start MariaDB or set TEST_MYSQL_URL=mysql+pymysql://user:pass@host:port")
    return MYSQL_URL


@pytest.fixture
def new_mysql_database(mysql_server: str) -> Iterator[Callable[[], str]]:
    """Creates fresh, empty MySQL databases (dropped after the test); returns their URLs."""
    engine = sa.create_engine(mysql_server)
    names: list[str] = []

    def create() -> str:
        names.append(f"v2m_test_{uuid.uuid4().hex[:12]}")
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {names[-1]}"))
        return f"{mysql_server}/{names[-1]}"

    yield create
    with engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP DATABASE {name}"))
    engine.dispose()


@pytest.fixture
def mysql_database(new_mysql_database: Callable[[], str]) -> str:
    return new_mysql_database()


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real mongod when TEST_MONGODB_URL is set; else nx-27017 (MongoDB wire protocol)."""
    if url := os.environ.get("TEST_MONGODB_URL"):
        need("MongoDB", lambda: pymongo.MongoClient(url).admin.command("ping"), "check the URL")
        yield url
        return
    binary = shutil.which("nx-27017") or shutil.which("nx-27017", path=Path(sys.executable).parent)
    need("nx-27017", lambda: binary or missing("nx-27017"), "pip install nx-27017")
    folder = tmp_path_factory.mktemp("nx")
    port = free_port()
    proc = subprocess.Popen(
        [
            str(binary),
            "--db",
            str(folder / "db.sqlite"),
            "-p",
            str(port),
            "--log-file",
            str(folder / "log"),
            "--pid-file",
            str(folder / "pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"mongodb://127.0.0.1:{port}/video2mp3_test"
    client: pymongo.MongoClient = pymongo.MongoClient(url, serverSelectionTimeoutMS=500)
    wait_for(lambda: client.admin.command("ping"), 20, "nx-27017 to answer")
    client.close()
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # a connection it still serves holds it up: the run is over
        proc.kill()
        proc.wait(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver: a real HTTP server on loopback."""
    server = Receiver()
    yield server
    server.close()
