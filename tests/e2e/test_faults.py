"""Fault injection: the distributed system keeps every promise while its parts are killed and
its dependencies go away.

Auth, the gateway, its worker, the notifier and two converters run as separate processes on a
private RabbitMQ node, an nx-27017 MongoDB wire server and the machine's MariaDB behind a TCP
proxy, all owned by this test. Jobs are uploaded in waves; after each wave one fault hits: a
converter, the notifier, the gateway or its worker SIGKILLed and restarted, the broker's app
stopped and started, MongoDB stopped, MySQL cut off. Within 15 s of each fault's end (for a
killed service: once its new process answers) every process answers, every queue has its
consumers back and the gateway serves its jobs (the next wave's uploads must get through within
15 s too). In the end every job has succeeded, each owner got exactly one email per job, each
job has exactly one MP3, every job's webhook call arrived (a repeat only with the same
webhook-id and body), and nothing was dead-lettered.
"""

from __future__ import annotations

import collections
import json
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pymongo
import pytest
import requests
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from tests.contract.test_mail import Inbox
from tests.e2e.faults import MongoWireServer, TCPProxy, find_nx
from tests.e2e.flow import sign_up
from tests.e2e.test_distributed import Services
from tests.rabbitmq import RABBITMQ_BIN, PrivateRabbitMQ
from tests.support import Receiver, free_port, missing, need, wait_for
from video2mp3 import signing
from video2mp3.auth.keys import generate

JOBS_PER_WAVE = 3
OUTAGE = 5.0  # seconds a dependency stays away
RECOVERY = 15.0  # seconds every service has, once a fault ends, to be ready again


class Stack:
    """The services and everything the test breaks."""

    def __init__(self, tmp: Path, mysql_url: Callable[[], str]) -> None:
        self.rabbit = PrivateRabbitMQ(tmp / "rabbitmq")
        binary = find_nx()
        assert binary is not None
        self.mongo = MongoWireServer(tmp / "nx", binary)
        direct = {name: sa.make_url(mysql_url()) for name in ("AUTH", "JOBS", "NOTIFIER")}
        server = direct["JOBS"]
        self.proxy = TCPProxy((server.host or "127.0.0.1", server.port or 3306))
        self.jobs_db = direct["JOBS"].render_as_string(hide_password=False)
        # Every service reaches MySQL through the proxy only.
        databases = {
            name: url.set(host="127.0.0.1", port=self.proxy.port) for name, url in direct.items()
        }
        self.inbox = Inbox()
        self.receiver = Receiver()
        self.smtp = Controller(self.inbox, hostname="127.0.0.1", port=free_port())
        self.smtp.start()
        generate(tmp / "keys")
        signing.generate(tmp / "link-keys")
        self.prefix = f"v2m-faults-{uuid.uuid4().hex[:8]}"
        self.services = Services(
            tmp,
            {
                **{
                    f"VIDEO2MP3_{name}_DB_URL": url.render_as_string(hide_password=False)
                    for name, url in databases.items()
                },
                "VIDEO2MP3_BROKER_URL": self.rabbit.url,
                "VIDEO2MP3_BROKER_PREFIX": self.prefix,
                "VIDEO2MP3_MONGODB_URL": self.mongo.url,
                "VIDEO2MP3_SMTP_URL": f"smtp://127.0.0.1:{self.smtp.port}",
                "VIDEO2MP3_MAIL_FROM": "video2mp3 <noreply@example.com>",
                "VIDEO2MP3_JWT_KEY_DIR": str(tmp / "keys"),
                "VIDEO2MP3_LINK_KEY_DIR": str(tmp / "link-keys"),
                "VIDEO2MP3_WEB_WORKERS": "1",
                "VIDEO2MP3_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver's
            },
        )
        self.services.start("auth", "auth")
        self.services.env["VIDEO2MP3_AUTH_URL"] = f"http://127.0.0.1:{self.services.ports['auth']}"
        for name, service in SERVICES.items():
            if name != "auth":
                self.services.start(name, service)
        self.services.wait_ready()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.services.ports['gateway']}"

    def recovered(self, user: dict[str, str]) -> bool:
        """Every process is up, every queue has its consumers back, the gateway reads its jobs."""
        alive = all(
            requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            for port in self.services.admin_ports.values()
        )
        consumers = self.rabbit.consumers()
        expected = {"converter": 2, "gateway": 1, "notifier": 1}  # the gateway's worker tracks
        listening = all(consumers.get(f"{self.prefix}.{q}") == n for q, n in expected.items())
        jobs = requests.get(f"{self.base}/api/v1/jobs?limit=1", headers=user, timeout=5)
        return alive and listening and jobs.status_code == 200

    def kill(self, name: str) -> None:
        """SIGKILL a service and start it again, as its supervisor would. The fault ends when the
        new process answers: its start-up (imports, migrations) is not recovery."""
        self.services.procs[name].kill()
        self.services.procs[name].wait(10)
        self.services.start(name, SERVICES[name])
        self.services.wait_ready()

    def close(self) -> None:
        self.services.stop()
        self.smtp.stop()
        self.receiver.close()
        self.proxy.down()
        self.mongo.stop()
        self.rabbit.close()


SERVICES = {
    "auth": "auth",
    "gateway": "gateway",
    "gateway-worker": "gateway-worker",
    "notifier": "notifier",
    "converter-1": "converter",
    "converter-2": "converter",
}


def outage(stop: Callable[[], None], start: Callable[[], None]) -> Callable[[Stack], None]:
    def fault(stack: Stack) -> None:
        stop()
        time.sleep(OUTAGE)  # how long the dependency is away: the fault itself, not a check
        start()

    return fault


FAULTS: list[tuple[str, Callable[[Stack], None]]] = [
    ("converter-1 SIGKILLed", lambda s: s.kill("converter-1")),
    ("broker app stopped", lambda s: outage(s.rabbit.stop_app, s.rabbit.start_app)(s)),
    ("notifier SIGKILLed", lambda s: s.kill("notifier")),
    ("MongoDB stopped", lambda s: outage(s.mongo.stop, s.mongo.start)(s)),
    ("converter-2 SIGKILLed", lambda s: s.kill("converter-2")),
    ("MySQL cut off", lambda s: outage(s.proxy.down, s.proxy.up)(s)),
    ("gateway SIGKILLed", lambda s: s.kill("gateway")),
    ("gateway-worker SIGKILLed", lambda s: s.kill("gateway-worker")),
    ("broker app stopped again", lambda s: outage(s.rabbit.stop_app, s.rabbit.start_app)(s)),
    ("converter-1 SIGKILLed again", lambda s: s.kill("converter-1")),
    ("broker app stopped a third time", lambda s: outage(s.rabbit.stop_app, s.rabbit.start_app)(s)),
]


@pytest.fixture
def stack(tmp_path: Path, new_mysql_database: Callable[[], str]) -> Iterator[Stack]:
    need(
        "rabbitmq-server",
        lambda: (RABBITMQ_BIN / "rabbitmq-server").exists() or missing("rabbitmq-server"),
        "apt-get install rabbitmq-server (the test runs a node of its own)",
    )
    need("nx-27017", lambda: find_nx() or missing("nx-27017"), "pip install nx-27017")
    stack = Stack(tmp_path, new_mysql_database)
    try:
        yield stack
    finally:
        stack.close()


def upload(stack: Stack, user: dict[str, str], video: bytes, name: str) -> str:
    """Upload like a client that retries while the gateway is restarting; the job's id."""

    def attempt() -> str | None:
        response = requests.post(
            f"{stack.base}/api/v1/jobs", headers=user, files={"file": (name, video)}, timeout=30
        )
        if response.status_code == 202:
            return str(response.json()["id"])
        assert response.status_code in (502, 503), response.text  # only an outage may refuse it
        return None

    return str(wait_for(attempt, RECOVERY, f"the upload of {name}"))


def distinct(video: bytes, name: str) -> bytes:
    """``video`` with a top-level ``free`` box naming the job: a valid MP4 of its own SHA-256,
    so that every job is converted rather than answered from the conversion cache."""
    tag = name.encode()
    return video + struct.pack(">I", 8 + len(tag)) + b"free" + tag


@pytest.mark.timeout(900)
def test_every_promise_holds_under_faults(stack: Stack, samples: dict[str, Path]) -> None:
    video = samples["h264_aac.mp4"].read_bytes()
    user = sign_up(stack.base, "fay@example.com")
    hook = requests.post(
        f"{stack.base}/api/v1/webhooks", headers=user, json={"url": stack.receiver.url}, timeout=10
    )
    assert hook.status_code == 201, hook.text
    jobs: dict[str, str] = {}  # upload name -> job id
    recoveries: dict[str, float] = {}  # seconds from each fault's end to every service ready
    for wave, (what, fault) in enumerate([*FAULTS, ("nothing", lambda s: None)]):
        for n in range(JOBS_PER_WAVE):
            name = f"wave{wave:02d}-job{n}.mp4"
            jobs[name] = upload(stack, user, distinct(video, name), name)
        fault(stack)
        ended = time.monotonic()
        wait_for(lambda: stack.recovered(user), RECOVERY, f"every service to recover from: {what}")
        recoveries[what] = time.monotonic() - ended

    def job(job_id: str) -> dict:
        return requests.get(f"{stack.base}/api/v1/jobs/{job_id}", headers=user, timeout=10).json()

    def all_settled() -> list[dict] | None:
        found = [job(j) for j in jobs.values()]
        return found if all(j["status"] in ("succeeded", "failed") for j in found) else None

    results = wait_for(all_settled, 300, "every job to finish")
    assert [(j["filename"], j["error"]) for j in results if j["status"] != "succeeded"] == []

    # Quiet: nothing left to relay, nothing queued or in hand anywhere. Only then is the number
    # of emails final.
    engine = sa.create_engine(stack.jobs_db)
    with engine.connect() as conn:
        outbox = lambda: conn.execute(sa.text("SELECT COUNT(*) FROM outbox")).scalar()  # noqa: E731

        def quiet() -> bool:
            conn.commit()
            counts = stack.rabbit.messages()
            return outbox() == 0 and sum(counts.values()) == 0

        wait_for(quiet, 60, "the outbox and every queue to drain")
    engine.dispose()
    assert stack.rabbit.messages().get(f"{stack.prefix}.dead", 0) == 0  # nothing dead-lettered

    emails = collections.Counter()
    message_ids = [m["Message-ID"] for m in stack.inbox.messages]
    for mail in stack.inbox.messages:
        body = mail.get_payload(decode=True).decode()
        emails.update(job_id for job_id in jobs.values() if job_id in body)
    assert emails == collections.Counter(jobs.values()), "exactly one email per job"
    assert len(set(message_ids)) == len(message_ids) == len(jobs)

    # Webhook calls come from the same delivery record, sent by the notifier's own loop: every
    # job's call arrives, and a repeat (a notifier killed between a send and its mark) carries
    # the same webhook-id and body, for the receiver to drop.
    def calls() -> dict[str, set[bytes]]:
        found: dict[str, set[bytes]] = collections.defaultdict(set)
        for headers, body in list(stack.receiver.requests):
            found[json.loads(body)["data"]["job_id"]].add(headers["webhook-id"].encode() + body)
        return found

    wait_for(lambda: calls().keys() >= set(jobs.values()), 120, "a webhook call for every job")
    assert calls().keys() == set(jobs.values())
    assert all(len(variants) == 1 for variants in calls().values()), "one id and body per job"
    repeats = len(stack.receiver.requests) - len(jobs)

    with pymongo.MongoClient(stack.mongo.url) as mongo:
        files = mongo.get_default_database()["fs.files"]
        for name, job_id in jobs.items():
            mp3_name = name.replace(".mp4", ".mp3")
            stored = [str(f["_id"]) for f in files.find({"filename": mp3_name})]
            [result] = [r for r in results if r["id"] == job_id]
            assert stored == [result["mp3_fid"]], f"one MP3 for {name}"
    print(
        f"\nfaults: {len(FAULTS)}, jobs: {len(jobs)} succeeded, emails: {len(message_ids)},"
        f" MP3s: {len(jobs)}, webhook calls: {len(jobs)} (+{repeats} repeated),"
        f" dead letters: 0; recovered after (s): "
        + ", ".join(f"{what} {seconds:.1f}" for what, seconds in recoveries.items())
    )
