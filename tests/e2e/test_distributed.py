"""The distributed system: auth, gateway, notifier and two converters as separate OS processes,
on the real RabbitMQ, MariaDB, a MongoDB wire-protocol server and an SMTP server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pymongo
import pytest
import requests
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from tests.contract.test_mail import Inbox
from tests.e2e.flow import run_journey, sign_up
from tests.support import (
    LONG,
    delete_topology,
    free_port,
    inspect_audio,
    make_sample,
    queue_messages,
    wait_for,
)
from video2mp3 import signing
from video2mp3.auth.keys import generate


class Services:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.admin_ports: dict[str, int] = {}  # probes and /metrics

    def start(self, name: str, service: str) -> None:
        port = self.ports[name] = free_port()
        admin = self.admin_ports[name] = free_port() if service in ("auth", "gateway") else port
        command = [sys.executable, "-m", "video2mp3.cli", "serve", service]
        with (self.tmp / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                [*command, "--port", str(port), "--admin-port", str(admin)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        for name, port in self.admin_ports.items():

            def ready(name: str = name, port: int = port) -> bool:
                assert self.procs[name].poll() is None, self.log(name)
                return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200

            wait_for(ready, 60, f"{name} to be ready")

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()  # reaped here, not reported against a later test
                pytest.fail(f"{name} ignored SIGTERM")


@pytest.fixture
def system(
    tmp_path: Path, amqp_url: str, mongodb_url: str, new_mysql_database: Callable[[], str]
) -> Iterator[tuple[Services, Inbox]]:
    prefix = f"v2m-e2e-{uuid.uuid4().hex[:8]}"  # its own queues: nothing shared, nothing left
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    generate(tmp_path / "keys")
    signing.generate(tmp_path / "link-keys")
    services = Services(
        tmp_path,
        {
            "VIDEO2MP3_AUTH_DB_URL": new_mysql_database(),
            "VIDEO2MP3_JOBS_DB_URL": new_mysql_database(),
            "VIDEO2MP3_NOTIFIER_DB_URL": new_mysql_database(),
            "VIDEO2MP3_BROKER_URL": amqp_url,
            "VIDEO2MP3_BROKER_PREFIX": prefix,
            "VIDEO2MP3_MONGODB_URL": mongodb_url,
            "VIDEO2MP3_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
            "VIDEO2MP3_MAIL_FROM": "video2mp3 <noreply@example.com>",
            "VIDEO2MP3_JWT_KEY_DIR": str(tmp_path / "keys"),
            "VIDEO2MP3_LINK_KEY_DIR": str(tmp_path / "link-keys"),
            "VIDEO2MP3_WEB_WORKERS": "2",
            "VIDEO2MP3_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the tests' receivers
        },
    )
    services.start("auth", "auth")
    services.env["VIDEO2MP3_AUTH_URL"] = f"http://127.0.0.1:{services.ports['auth']}"
    services.start("gateway", "gateway")
    # Emailed links point at the gateway.
    services.env["VIDEO2MP3_PUBLIC_URL"] = f"http://127.0.0.1:{services.ports['gateway']}"
    services.start("gateway-worker", "gateway-worker")
    services.start("notifier", "notifier")
    try:
        services.wait_ready()
        yield services, lambda: list(inbox.messages)  # each test starts its converters
    finally:
        services.stop()
        smtp.stop()
        delete_topology(amqp_url, prefix)


def test_the_whole_pipeline(
    system: tuple[Services, Inbox], samples: dict[str, Path], tmp_path: Path
) -> None:
    services, inbox = system
    services.start("converter-1", "converter")
    services.start("converter-2", "converter")
    services.wait_ready()
    base = f"http://127.0.0.1:{services.ports['gateway']}"
    run_journey(base, samples, inbox, tmp_path)
    converted = [
        services.log(n).count('"msg": "converted"') for n in ("converter-1", "converter-2")
    ]
    assert all(converted), f"both converters should have worked: {converted}"
    outcomes: dict[str, float] = {}
    for name in ("converter-1", "converter-2"):
        metrics = requests.get(
            f"http://127.0.0.1:{services.admin_ports[name]}/metrics", timeout=5
        ).text
        for family in text_string_to_metric_families(metrics):
            for sample in family.samples:
                if sample.name == "video2mp3_conversions_total":
                    outcome = sample.labels["outcome"]
                    outcomes[outcome] = outcomes.get(outcome, 0) + sample.value
    assert outcomes == {"succeeded": 4, "no_audio": 1, "invalid_media": 1}


def test_a_converter_killed_mid_conversion_loses_nothing(
    system: tuple[Services, Inbox], media_dir: Path, tmp_path: Path
) -> None:
    """SIGKILL while ffmpeg runs: the unacked request goes to the next converter; one MP3, one
    email, nothing left behind."""
    services, inbox = system
    services.start("converter-1", "converter")
    services.wait_ready()
    base = f"http://127.0.0.1:{services.ports['gateway']}"
    user = sign_up(base, "kim@example.com")
    video = make_sample(LONG, media_dir)
    with video.open("rb") as data:
        upload = requests.post(
            f"{base}/api/v1/jobs", headers=user, files={"file": data}, timeout=60
        )
    job_url = f"{base}/api/v1/jobs/{upload.json()['id']}"

    def job() -> dict:
        return requests.get(job_url, headers=user, timeout=10).json()

    wait_for(lambda: job()["status"] == "processing", 60, "the conversion to start")
    services.procs["converter-1"].kill()
    services.procs["converter-1"].wait(10)
    assert job()["status"] == "processing"  # killed mid-way, before it could finish
    services.start("converter-2", "converter")
    done = wait_for(lambda: (j := job())["status"] in ("succeeded", "failed") and j, 120, "the job")
    assert done["status"] == "succeeded", done

    mp3 = tmp_path / "long.mp3"
    mp3.write_bytes(requests.get(f"{job_url}/mp3", headers=user, timeout=60).content)
    assert abs(inspect_audio(mp3).duration - LONG.audio_seconds) <= 0.1  # type: ignore[operator]
    wait_for(lambda: inbox(), 30, "the email")
    # Facts, not a pause: with nothing left to relay or deliver, no second email can come.
    jobs_db = sa.create_engine(services.env["VIDEO2MP3_JOBS_DB_URL"])
    with jobs_db.connect() as db:
        wait_for(lambda: db.scalar(sa.text("SELECT COUNT(*) FROM outbox")) == 0, 30, "the relay")
    jobs_db.dispose()
    prefix = services.env["VIDEO2MP3_BROKER_PREFIX"]
    wait_for(lambda: not any(queue_messages(prefix).values()), 60, "every queue to be worked off")
    [mail] = inbox()
    assert done["mp3_fid"] in mail.get_payload(decode=True).decode()
    with pymongo.MongoClient(services.env["VIDEO2MP3_MONGODB_URL"]) as gridfs:
        files = gridfs.get_default_database()["fs.files"]
        mp3s = list(files.find({"filename": "long_mono.mp3"}))
    assert [str(f["_id"]) for f in mp3s] == [done["mp3_fid"]]


def test_a_stopping_gateway_ends_open_pages_streams(system: tuple[Services, Inbox]) -> None:
    """SIGTERM ends the live streams at once, cleanly (the browser reconnects elsewhere), rather
    than holding the worker until gunicorn's graceful timeout cuts them."""
    services, _ = system
    base = f"http://127.0.0.1:{services.ports['gateway']}"
    user = sign_up(base, "lee@example.com")
    with requests.get(f"{base}/api/v1/events", headers=user, stream=True, timeout=60) as stream:
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines) == "retry: 1000"
        services.procs["gateway"].terminate()
        rest = list(lines)  # raises ChunkedEncodingError if the stream is cut, not ended
    assert all(line == "" or line.startswith(":") for line in rest)
    assert services.procs["gateway"].wait(60) == 0
