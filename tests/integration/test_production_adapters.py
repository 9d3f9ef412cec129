"""The gateway, converter and notifier on their production adapters, in one test process.

MySQL (fresh databases), RabbitMQ (a prefix of its own), GridFS over the wire (nx-27017, or a
real mongod with TEST_MONGODB_URL), auth over HTTP (the real auth app on a free port) and SMTP
(aiosmtpd). No fake: what the converter and the notifier do is what they do in deployment. Runs
the happy path, the give-up path (fifth failure -> job failed -> email -> dead letter) and the
stalled-job sweep end to end.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from tests.contract.test_mail import Inbox
from tests.support import FFMPEG, delete_topology, free_port, inspect_audio, wait_for
from video2mp3 import bootstrap, signing
from video2mp3.adapters.blobs.gridfs import GridFSBlobStore
from video2mp3.adapters.bus.rabbitmq import RabbitMQBus
from video2mp3.auth.app import create_app as auth_app
from video2mp3.auth.keys import generate
from video2mp3.domain.events import ConversionProgress, Event
from video2mp3.ports.bus import DELIVERY_LIMIT
from video2mp3.settings import load

PASSWORD = "pw-123456"


class Production:
    """Auth served over HTTP; the gateway app; converters and a notifier consuming RabbitMQ."""

    def __init__(self, tmp: Path, amqp_url: str, mongodb_url: str, databases: list[str]) -> None:
        generate(tmp / "keys")
        signing.generate(tmp / "link-keys")
        self.prefix = f"v2m-it-{uuid.uuid4().hex[:8]}"
        self.amqp_url = amqp_url
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []
        self.inbox = Inbox()
        self._smtp = Controller(self.inbox, hostname="127.0.0.1", port=free_port())
        self._smtp.start()
        self._closers.append(self._smtp.stop)
        try:
            self._start(tmp, mongodb_url, databases)
        except BaseException:
            self.close()
            raise

    def _start(self, tmp: Path, mongodb_url: str, databases: list[str]) -> None:
        base = load(
            auth_db_url=databases[0],
            jobs_db_url=databases[1],
            notifier_db_url=databases[2],
            broker_url=self.amqp_url,
            broker_prefix=self.prefix,
            mongodb_url=mongodb_url,
            smtp_url=f"smtp://127.0.0.1:{self._smtp.port}",
            jwt_key_dir=tmp / "keys",
            link_key_dir=tmp / "link-keys",
        )
        bootstrap.create_schemas(base, "auth", "gateway", "notifier")
        self._auth = make_server("127.0.0.1", 0, auth_app(bootstrap.accounts(base)), threaded=True)
        threading.Thread(target=self._auth.serve_forever, daemon=True).start()
        self._closers += [self._auth.shutdown, self._auth.server_close]
        self.settings = base.model_copy(
            update={"auth_url": f"http://127.0.0.1:{self._auth.server_port}"}
        )
        self.gateway = self.start_gateway()
        bus, _ = self._adapters()
        mailer = bootstrap.mailer(self.settings, "notifier")
        self._run(bootstrap.notifier_worker(self.settings, mailer, bus))

    def _adapters(self) -> tuple[RabbitMQBus, GridFSBlobStore]:
        """A bus and a blob store of the service's own, as each process would have."""
        assert self.settings.mongodb_url is not None
        bus = RabbitMQBus(self.amqp_url, prefix=self.prefix, retry_base=0.05)
        blobs = GridFSBlobStore(self.settings.mongodb_url)
        self._closers += [bus.close, blobs.close]
        return bus, blobs

    def _run(self, worker: bootstrap.Worker) -> None:
        for loop in worker.loops.values():
            self._threads.append(threading.Thread(target=loop, args=(self.stop,)))
            self._threads[-1].start()

    def start_gateway(self) -> FlaskClient:
        """A gateway, web app and worker (again): the worker's stalled-job sweep runs at start."""
        bus, blobs = self._adapters()
        jobs = bootstrap.jobs(self.settings)
        worker, background = bootstrap.gateway_worker(self.settings, jobs, blobs, bus)
        self._run(worker)
        identity = bootstrap.identity(self.settings)
        app = bootstrap.gateway_app(
            self.settings, identity, jobs, blobs, on_queued=background.wake_relay
        )
        return app.test_client()

    def start_converter(self, **settings: Any) -> None:
        bus, blobs = self._adapters()
        self._run(bootstrap.converter_worker(self.settings.model_copy(update=settings), blobs, bus))

    def user(self, email: str) -> dict[str, str]:
        body = {"email": email, "password": PASSWORD}
        assert self.gateway.post("/api/v1/users", json=body).status_code == 201
        token = self.gateway.post("/login", auth=(email, PASSWORD))
        assert token.status_code == 200, token.get_json()
        return {"Authorization": f"Bearer {token.text}"}

    def upload(self, headers: dict[str, str], video: Path) -> str:
        with video.open("rb") as data:
            response = self.gateway.post(
                "/api/v1/jobs", headers=headers, data={"file": (data, video.name)}
            )
        assert response.status_code == 202, response.get_json()
        return str(response.get_json()["id"])

    def job(self, headers: dict[str, str], job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.gateway.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
        return job

    def finished(self, headers: dict[str, str], job_id: str, timeout: float) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            job = self.job(headers, job_id)
            return job if job["status"] in ("succeeded", "failed") else None

        return wait_for(done, timeout, f"job {job_id} to finish")  # type: ignore[return-value]

    def mail_for(self, job_id: str) -> str:
        def body() -> str | None:
            bodies = [m.get_payload(decode=True).decode() for m in self.inbox.messages]
            return next((b for b in bodies if job_id in b), None)

        return wait_for(body, 30, f"the email about {job_id}")  # type: ignore[return-value]

    def outbox_depth(self) -> int:
        engine = sa.create_engine(str(self.settings.jobs_db_url))
        try:
            with engine.connect() as db:
                return int(db.scalar(sa.text("SELECT COUNT(*) FROM outbox")) or 0)
        finally:
            engine.dispose()

    def dead_letters(self) -> list[bytes]:
        with pika.BlockingConnection(pika.URLParameters(self.amqp_url)) as connection:
            channel, bodies = connection.channel(), []
            while True:
                method, _, body = channel.basic_get(f"{self.prefix}.dead", auto_ack=True)
                if method is None:
                    return bodies
                bodies.append(body)

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)
        for close in reversed(self._closers):
            close()
        delete_topology(self.amqp_url, self.prefix)


@pytest.fixture
def production(
    tmp_path: Path, amqp_url: str, mongodb_url: str, new_mysql_database: Callable[[], str]
) -> Iterator[Production]:
    stack = Production(tmp_path, amqp_url, mongodb_url, [new_mysql_database() for _ in "abc"])
    try:
        yield stack
    finally:
        stack.close()


def test_a_video_becomes_an_mp3_its_owner_alone_downloads(
    production: Production, samples: dict[str, Path], tmp_path: Path
) -> None:
    production.start_converter()
    ann, mallory = production.user("ann@example.com"), production.user("mallory@example.com")
    job_id = production.upload(ann, samples["h264_aac.mp4"])
    job = production.finished(ann, job_id, 60)
    assert job["status"] == "succeeded", job
    with production.gateway.get(f"/api/v1/jobs/{job_id}/mp3", headers=ann) as response:
        assert response.status_code == 200
        (tmp_path / "out.mp3").write_bytes(response.data)
    facts = inspect_audio(tmp_path / "out.mp3")
    assert (facts.format, facts.codec) == ("mp3", "mp3")
    assert abs(facts.duration - 3.0) <= 0.1
    assert job["mp3_fid"] in production.mail_for(job_id)
    for url in (f"/api/v1/jobs/{job_id}/mp3", f"/download?fid={job['mp3_fid']}"):
        assert production.gateway.get(url, headers=mallory).status_code == 404
    wait_for(lambda: production.outbox_depth() == 0, 10, "the outbox to be relayed")


def test_the_fifth_failure_fails_the_job_emails_and_dead_letters(
    production: Production, samples: dict[str, Path], tmp_path: Path
) -> None:
    """A converter whose ffmpeg is removed once it has started cannot run it at all: not the
    file's fault, so each delivery fails and is retried; after the fifth the owner is told and
    the request is dead-lettered."""
    ffmpeg = tmp_path / "ffmpeg"
    ffmpeg.symlink_to(FFMPEG)
    production.start_converter(ffmpeg=str(ffmpeg))
    ffmpeg.unlink()
    ann = production.user("ann@example.com")
    job_id = production.upload(ann, samples["h264_aac.mp4"])
    job = production.finished(ann, job_id, 120)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "internal_error"
    assert f"failed {DELIVERY_LIMIT} times" in job["error"]["message"]
    assert "internal_error" in production.mail_for(job_id)
    dead = wait_for(production.dead_letters, 30, "the dead letter")
    assert [Event.from_json(body).job_id for body in dead] == [job_id]  # type: ignore[union-attr]


def test_a_stalled_job_is_failed_by_the_sweep_and_its_owner_told(
    production: Production, samples: dict[str, Path]
) -> None:
    """A converter reported progress, then went silent for longer than the threshold (its last
    news is dated back in the jobs database); the next gateway to start sweeps the job."""
    ann = production.user("ann@example.com")
    job_id = production.upload(ann, samples["h264_aac.mp4"])
    bus = RabbitMQBus(production.amqp_url, prefix=production.prefix)
    try:
        bus.publish(Event(job_id, ConversionProgress(0.4)), transient=True)  # as a converter
    finally:
        bus.close()
    wait_for(lambda: production.job(ann, job_id)["status"] == "processing", 10, "processing")
    silent_since = sa.text("UPDATE jobs SET updated_at = :t WHERE id = :id")
    engine = sa.create_engine(str(production.settings.jobs_db_url))
    with engine.begin() as db:
        db.execute(silent_since, {"t": "2000-01-01 00:00:00", "id": job_id})
    engine.dispose()
    production.gateway = production.start_gateway()
    job = production.finished(ann, job_id, 30)
    assert (job["status"], job["error"]["code"]) == ("failed", "stalled")
    assert "stalled" in production.mail_for(job_id)
