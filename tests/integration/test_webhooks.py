"""Webhooks with a real HTTP receiver: registration through the API, signed deliveries from the
notifier's loop, retries, disabling, and every SSRF attempt refused.

The gateway, its worker and the notifier run in one process on embedded adapters (the
``Stack`` of the API tests plus the notifier worker); the receiver is a real HTTP server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook as Verifier

from tests.integration.test_gateway_api import Stack
from tests.support import Receiver, wait_for
from video2mp3 import bootstrap
from video2mp3.adapters.sql.deliveries import SQLDeliveryLog, endpoints
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.domain.jobs import utcnow
from video2mp3.domain.webhooks import EXCERPT_BYTES, WebhookTarget, excerpt
from video2mp3.notifier.webhooks import Sender, WebhookDeliverer
from video2mp3.ports.deliveries import EMAIL, Delivery
from video2mp3.ssrf import UrlGuard, parse_networks


class WebhookStack(Stack):
    """The API test stack plus the notifier, with loopback allowed for the receiver."""

    def __init__(self, root: Path, **overrides: Any) -> None:
        super().__init__(
            root,
            notifier_db_url=f"sqlite:///{root}/notifier.db",
            mail_outbox_dir=root / "outbox",
            **{"webhook_allowed_networks": "127.0.0.0/8", **overrides},
        )
        bootstrap.create_schemas(self.settings, "notifier")
        worker = bootstrap.notifier_worker(
            self.settings, bootstrap.mailer(self.settings, "test"), self.bus
        )
        for loop in worker.loops.values():
            self.loops.append(threading.Thread(target=loop, args=(self.stopping,)))
            self.loops[-1].start()
        self.schedule = SQLDeliveryLog(create_engine(str(self.settings.notifier_db_url)))

    def register(self, url: object, **body: Any) -> Any:
        return self.client.post("/api/v1/webhooks", headers=self.headers, json={"url": url, **body})


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[WebhookStack]:
    stack = WebhookStack(tmp_path)
    stack.headers = stack.user()  # type: ignore[attr-defined]
    yield stack
    stack.stop()


def test_a_finished_job_is_delivered_signed(stack: WebhookStack, receiver: Receiver) -> None:
    created = stack.register(receiver.url, events=["job.succeeded"])
    assert created.status_code == 201, created.get_json()
    webhook = created.get_json()
    assert webhook["secret"].startswith("whsec_")
    listed = stack.client.get("/api/v1/webhooks", headers=stack.headers).get_json()["items"]
    assert [(w["id"], "secret" in w) for w in listed] == [(webhook["id"], False)]  # shown once

    job = stack.upload(stack.headers).get_json()
    stack.finish(job["id"])
    wait_for(lambda: receiver.requests, 10, "the delivery")
    [(headers, body)] = receiver.requests
    delivered = Verifier(webhook["secret"]).verify(body, headers)  # raises unless signed right
    assert delivered["type"] == "job.succeeded"
    assert delivered["data"] == {
        "job_id": job["id"],
        "status": "succeeded",
        "filename": "My Clip.mp4",
        "duration": 3.0,
        "size": 10240,
        "error": None,
        "download_url": f"{stack.settings.public_url}/api/v1/jobs/{job['id']}/mp3",
    }
    with pytest.raises(Exception, match="signature"):
        Verifier("whsec_" + "A" * 32).verify(body, headers)  # another secret does not verify

    # Deleted: the next job tells nobody.
    assert (
        stack.client.delete(f"/api/v1/webhooks/{webhook['id']}", headers=stack.headers).status_code
        == 204
    )
    other = stack.upload(stack.headers).get_json()
    stack.finish(other["id"])
    wait_for(lambda: stack.bus.depth("notifier") == 0, 10, "the notifier to settle")
    assert len(receiver.requests) == 1


def test_a_500_is_retried_with_the_same_id_and_body(
    stack: WebhookStack, receiver: Receiver
) -> None:
    receiver.answers = [(500, {}, 0.0)]
    secret = stack.register(receiver.url).get_json()["secret"]
    job = stack.upload(stack.headers).get_json()
    stack.finish(job["id"])
    wait_for(lambda: receiver.requests, 10, "the first attempt")
    [(event_id, channel)] = _webhook_deliveries(stack)
    row = stack.schedule.record(event_id, channel)
    assert row is not None
    assert (row.attempts, row.last_status, row.last_excerpt) == (1, 500, "receiver says hello\n")
    # The retry is due 5 s later: claim it as the loop will then, and attempt it.
    [retry] = stack.schedule.due(utcnow() + timedelta(seconds=6))
    stack_deliverer(stack).attempt(retry)
    assert len(receiver.requests) == 2
    (first, body1), (second, body2) = receiver.requests
    assert first["webhook-id"] == second["webhook-id"]
    assert body1 == body2
    for headers, body in receiver.requests:
        Verifier(secret).verify(body, headers)
    row = stack.schedule.record(event_id, channel)
    assert row is not None
    assert (row.attempts, row.last_status, row.sent_at is not None) == (2, 204, True)
    email = stack.schedule.record(event_id, EMAIL)  # the owner's email: in the same record
    assert email is not None
    assert email.sent_at is not None


def test_an_endpoint_failing_for_3_days_is_disabled_and_its_owner_emailed(
    stack: WebhookStack, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.answers = [(503, {}, 0.0), (503, {}, 0.0)]
    webhook = stack.register(receiver.url).get_json()
    stack.finish(stack.upload(stack.headers).get_json()["id"])
    wait_for(lambda: receiver.requests, 10, "the first attempt")
    with stack.schedule.engine.begin() as conn:  # three days pass
        conn.execute(endpoints.update().values(failing_since=sa.func.datetime("now", "-73 hours")))
    [retry] = stack.schedule.due(utcnow() + timedelta(seconds=6))
    stack_deliverer(stack).attempt(retry)

    def disabled() -> bool:
        [listed] = stack.client.get("/api/v1/webhooks", headers=stack.headers).get_json()["items"]
        return bool(listed["disabled"])

    wait_for(disabled, 10, "the gateway to hear of it")  # through webhook.disabled on the bus
    mails = [
        message_from_bytes(p.read_bytes())
        for p in (stack.settings.mail_outbox_dir or Path()).glob("*.eml")
    ]
    [mail] = [m for m in mails if m["Subject"] == "Your webhook was disabled"]
    assert mail["To"] == "ann@example.com"
    assert webhook["id"] in mail.get_payload(decode=True).decode()
    stack.finish(stack.upload(stack.headers).get_json()["id"])
    wait_for(lambda: stack.bus.depth("notifier") == 0, 10, "the notifier to settle")
    assert len(receiver.requests) == 2  # nothing more for a disabled endpoint


def _webhook_deliveries(stack: WebhookStack) -> list[tuple[str, str]]:
    query = "SELECT event_id, channel FROM deliveries WHERE channel LIKE 'webhook:%'"
    with stack.schedule.engine.connect() as conn:
        return [(r.event_id, r.channel) for r in conn.execute(sa.text(query))]


def stack_deliverer(stack: WebhookStack) -> WebhookDeliverer:
    return WebhookDeliverer(
        stack.schedule,
        Sender(UrlGuard(parse_networks("127.0.0.0/8"))),
        bootstrap.mailer(stack.settings, "test"),
        stack.bus,
        mail_from=stack.settings.mail_from,
        public_url=stack.settings.public_url,
    )


# --- SSRF ----------------------------------------------------------------------------------


def test_registration_refuses_urls_it_may_not_call(tmp_path: Path, receiver: Receiver) -> None:
    stack = WebhookStack(tmp_path, webhook_allowed_networks="")
    stack.headers = stack.user()  # type: ignore[attr-defined]
    try:
        for url, why in [
            (receiver.url, "127.0.0.1 is a loopback address"),
            ("http://localhost:9/x", "localhost resolves to an address that is not public;"),
            ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
            ("http://[::ffff:10.0.0.1]/", "stands for 10.0.0.1, a private or reserved address"),
            ("http://[2002:7f00:1::]/", "stands for 127.0.0.1, a loopback address"),
        ]:
            refused = stack.register(url)
            assert refused.status_code == 422, url
            error = refused.get_json()["error"]
            assert error["code"] == "webhook_url_refused"
            assert why in error["message"]
        assert stack.register(receiver.url, events=["job.started"]).status_code == 422
        assert stack.client.get("/api/v1/webhooks", headers=stack.headers).get_json() == {
            "items": []
        }
    finally:
        stack.stop()
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://93.184.216.34/\r\nX: y", "a carriage return (U+000D) at character 22"),
        ("http://93.184.216.34/a\nb", "a line break (U+000A) at character 23"),
        ("http://93.184.216.34/a\tb", "a tab (U+0009) at character 23"),
        ("http://93.184.216.34/a b", "a space (U+0020) at character 23"),
        ("http://93.184.216.34:0/", "port must be a number from 1 to 65535"),
        ("javascript:alert(1)", "http:// or https://"),
        ("ftp://93.184.216.34/x", "http:// or https://"),
        ("http://user:pw@93.184.216.34/x", "no credentials"),
        ("http://93.184.216.34/" + "a" * 2048, "at most 2048 are allowed"),
        (42, "an http(s) URL"),
    ],
)
def test_registration_refuses_what_cannot_be_delivered_to(
    stack: WebhookStack, url: object, why: str
) -> None:
    refused = stack.register(url)
    assert refused.status_code == 422, url
    error = refused.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert why in error["message"]
    assert stack.client.get("/api/v1/webhooks", headers=stack.headers).get_json() == {"items": []}


def _delivery(url: str) -> Delivery:
    target = WebhookTarget("wh_1", url, "whsec_" + "QUJD" * 8)
    return Delivery("e1", target, "a@example.com", '{"type": "job.failed"}', 0, utcnow())


def test_a_name_resolving_to_a_private_address_is_refused_at_each_delivery(
    receiver: Receiver,
) -> None:
    answers = [["93.184.215.14"], ["10.0.0.7"]]  # public at registration, private afterwards
    guard = UrlGuard(resolver=lambda host, port: answers.pop(0))
    guard.check("http://rebinding.example/h")  # registration passes
    attempt = Sender(guard).send(_delivery("http://rebinding.example/h"))
    assert not attempt.ok
    assert "rebinding.example resolves to an address that is not public" in attempt.excerpt
    assert "10.0.0.7" not in attempt.excerpt


def test_delivery_refuses_loopback_without_the_setting(receiver: Receiver) -> None:
    attempt = Sender(UrlGuard()).send(_delivery(receiver.url))
    assert (attempt.ok, attempt.status) == (False, None)
    assert "loopback" in attempt.excerpt
    assert receiver.requests == []


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.answers = [(302, {"Location": "http://169.254.169.254/latest/meta-data/"}, 0.0)]
    attempt = Sender(UrlGuard(parse_networks("127.0.0.0/8"))).send(_delivery(receiver.url))
    assert (attempt.ok, attempt.status) == (False, 302)
    assert "redirects are not followed" in attempt.excerpt
    assert len(receiver.requests) == 1


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.answers = [(200, {}, 1.5)]
    attempt = Sender(UrlGuard(parse_networks("127.0.0.0/8")), timeout=0.5).send(
        _delivery(receiver.url)
    )
    assert (attempt.ok, attempt.status) == (False, None)
    assert attempt.excerpt == "no answer within 0.5 s"


def test_only_an_excerpt_of_the_answer_is_kept() -> None:
    kept = excerpt(b"x" * 10_000)
    assert len(kept) == EXCERPT_BYTES + 1
    assert kept.endswith("…")
    assert json.dumps(excerpt(b"\xff\xfe ok")) == json.dumps("\ufffd\ufffd ok")
