"""Starting a service with a missing or malformed setting stops it at once, naming the setting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from video2mp3.auth.keys import generate
from video2mp3.signing import SecretRing
from video2mp3.signing import generate as generate_link_key

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO2MP3_")}


def serve(service: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "video2mp3.cli", "serve", service, "--port", "0"],
        env={**CLEAN_ENV, **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("service", "settings", "named"),
    [
        ("converter", {}, "VIDEO2MP3_BROKER_URL is required by converter"),
        (
            "notifier",
            {"VIDEO2MP3_BROKER_URL": "amqp://x"},
            "VIDEO2MP3_SMTP_URL or VIDEO2MP3_MAIL_OUTBOX_DIR",
        ),
        ("gateway", {"VIDEO2MP3_JOBS_DB_URL": "sqlite://"}, "VIDEO2MP3_AUTH_URL is required"),
        (
            "gateway",
            {"VIDEO2MP3_JOBS_DB_URL": "sqlite://", "VIDEO2MP3_AUTH_URL": "http://a"},
            "VIDEO2MP3_LINK_KEY_DIR is required",
        ),
        (
            "notifier",
            {"VIDEO2MP3_BROKER_URL": "amqp://x", "VIDEO2MP3_MAIL_OUTBOX_DIR": "/tmp/x"},
            "VIDEO2MP3_NOTIFIER_DB_URL is required",
        ),
        (
            "notifier",
            {
                "VIDEO2MP3_BROKER_URL": "amqp://x",
                "VIDEO2MP3_MAIL_OUTBOX_DIR": "/tmp/x",
                "VIDEO2MP3_NOTIFIER_DB_URL": "sqlite://",
            },
            "VIDEO2MP3_LINK_KEY_DIR is required",
        ),
        (
            "auth",
            {"VIDEO2MP3_AUTH_DB_URL": "sqlite://"},
            "VIDEO2MP3_JWT_KEY_DIR is required",
        ),
        (
            "converter",
            {"VIDEO2MP3_BROKER_URL": "redis://x"},
            "VIDEO2MP3_BROKER_URL: Value error, must start",
        ),
        ("gateway", {"VIDEO2MP3_MAX_UPLOAD_BYTES": "big"}, "VIDEO2MP3_MAX_UPLOAD_BYTES"),
    ],
)
def test_bad_settings_stop_the_service_with_one_line(
    service: str, settings: dict[str, str], named: str
) -> None:
    done = serve(service, **settings)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("video2mp3: ")
    assert named in lines[0]


def test_an_unreachable_database_stops_the_service_with_one_line(tmp_path: Path) -> None:
    generate_link_key(tmp_path / "link-keys")
    done = serve(
        "gateway",
        VIDEO2MP3_JOBS_DB_URL="mysql+pymysql://root@127.0.0.1:1/jobs?connect_timeout=1",
        VIDEO2MP3_AUTH_URL="http://127.0.0.1:1",
        VIDEO2MP3_BROKER_URL="amqp://127.0.0.1:1",
        VIDEO2MP3_BLOB_DIR=str(tmp_path),
        VIDEO2MP3_LINK_KEY_DIR=str(tmp_path / "link-keys"),
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("video2mp3: database: ")


@pytest.mark.parametrize("service", ["auth", "notifier"])
def test_a_taken_admin_port_stops_the_service_with_one_line(service: str, tmp_path: Path) -> None:
    generate(tmp_path / "keys")
    generate_link_key(tmp_path / "link-keys")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - where the admin listener binds
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "video2mp3.cli", "serve", service,
             "--port", "0", "--admin-port", str(taken.getsockname()[1])],
            env={
                **CLEAN_ENV,
                "VIDEO2MP3_AUTH_DB_URL": f"sqlite:///{tmp_path}/auth.db",
                "VIDEO2MP3_JWT_KEY_DIR": str(tmp_path / "keys"),
                "VIDEO2MP3_BROKER_URL": "memory://",
                "VIDEO2MP3_MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
                "VIDEO2MP3_NOTIFIER_DB_URL": f"sqlite:///{tmp_path}/notifier.db",
                "VIDEO2MP3_LINK_KEY_DIR": str(tmp_path / "link-keys"),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]  # after the JSON logs of a migration
    assert line == "video2mp3: [Errno 98] Address already in use"


def test_keygen_adds_a_link_key(tmp_path: Path) -> None:
    """``keygen --links`` makes a key the gateway and the notifier can load."""
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "video2mp3.cli", "keygen", "--links", str(tmp_path)],
            env=CLEAN_ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    assert len(SecretRing.load(tmp_path).secrets) == 2
