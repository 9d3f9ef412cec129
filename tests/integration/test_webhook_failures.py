"""One webhook delivery's failure is that delivery's only: a row that cannot be sent (a URL
stored before URLs were parsed strictly, a secret that does not decode) is recorded as its
failed attempt while the rows after it in the same batch, another user's, go out at once.

The rows are written straight into the tables, as rows written by an earlier version would be,
in one transaction, so that the notifier's loop claims them in one batch.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook as Verifier

from tests.integration import test_webhooks
from tests.integration.test_webhooks import WebhookStack
from tests.support import Receiver, wait_for
from video2mp3.adapters.sql.deliveries import deliveries, endpoints
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.tables import webhooks
from video2mp3.domain.jobs import utcnow
from video2mp3.domain.webhooks import RETRY_DELAYS
from video2mp3.ports.deliveries import webhook_channel

BAD_URL = "http://93.184.216.34/\r\nX: y"  # accepted by registration before it parsed strictly
GOOD = 5
stack = test_webhooks.stack  # the same fixture: a user, the gateway and the notifier


def registered(stack: WebhookStack, headers: dict[str, str], url: str) -> dict[str, Any]:
    created = stack.client.post("/api/v1/webhooks", headers=headers, json={"url": url})
    assert created.status_code == 201, created.get_json()
    webhook: dict[str, Any] = created.get_json()
    return webhook


def row(event_id: str, webhook: dict[str, Any], email: str, url: str, **values: Any) -> Any:
    """A scheduled delivery, due a minute ago (or at ``next_attempt_at``)."""
    due = values.pop("next_attempt_at", utcnow() - timedelta(minutes=1))
    body = {"type": "job.succeeded", "timestamp": "2024-01-01T00:00:00Z"}
    return {
        "event_id": event_id,
        "channel": webhook_channel(webhook["id"]),
        "created_at": due,
        "next_attempt_at": due,
        "attempts": 0,
        "url": url,
        "secret": webhook["secret"],
        "owner_email": email,
        "body": json.dumps({**body, "data": {"job_id": f"job-{event_id}"}}),
        **values,
    }


def scheduled_together(stack: WebhookStack, first: Any, receiver: Receiver, ann: Any) -> None:
    """``first``, then ``GOOD`` deliveries to ``ann``'s receiver, all due, in one transaction."""
    later = utcnow() - timedelta(seconds=30)
    rows = [
        row(f"good-{n}", ann, "ann@example.com", receiver.url, next_attempt_at=later)
        for n in range(GOOD)
    ]
    with stack.schedule.engine.begin() as conn:
        conn.execute(deliveries.insert(), [first, *rows])


def record(stack: WebhookStack, event_id: str, webhook: dict[str, Any]) -> Any:
    found = stack.schedule.record(event_id, webhook_channel(webhook["id"]))
    assert found is not None
    return found


def delivered_to_ann(receiver: Receiver, ann: dict[str, Any]) -> None:
    wait_for(lambda: len(receiver.requests) >= GOOD, 10, "the other user's deliveries")
    assert len(receiver.requests) == GOOD
    for headers, body in receiver.requests:
        Verifier(ann["secret"]).verify(body, headers)


def test_a_url_that_cannot_be_delivered_to_fails_alone_at_once_and_disables_its_endpoint(
    stack: WebhookStack, receiver: Receiver
) -> None:
    ann = registered(stack, stack.headers, receiver.url)
    bob_headers = stack.user("bob@example.com")
    bob = registered(stack, bob_headers, receiver.url)
    jobs_db = create_engine(str(stack.settings.jobs_db_url))
    with jobs_db.begin() as conn:  # as stored before URLs were parsed strictly
        conn.execute(webhooks.update().where(webhooks.c.id == bob["id"]).values(url=BAD_URL))
    scheduled_together(stack, row("bad", bob, "bob@example.com", BAD_URL), receiver, ann)

    delivered_to_ann(receiver, ann)
    wait_for(lambda: record(stack, "bad", bob).attempts, 10, "the bad row's attempt")
    bad = record(stack, "bad", bob)
    # Counted, given up at once (no retry can make it deliverable), not sent.
    assert (bad.attempts, bad.next_attempt_at, bad.sent_at, bad.last_status) == (
        1,
        None,
        None,
        None,
    )
    assert "a carriage return (U+000D) at character 22" in bad.last_excerpt

    def bobs() -> dict[str, Any]:
        [listed] = stack.client.get("/api/v1/webhooks", headers=bob_headers).get_json()["items"]
        return dict(listed)

    wait_for(lambda: bobs()["disabled"], 10, "the gateway to hear that it is disabled")
    reason = bobs()["disabled_reason"]
    assert "its URL cannot be called" in reason
    assert "a carriage return (U+000D) at character 22" in reason
    mails = [
        message_from_bytes(p.read_bytes())
        for p in (stack.settings.mail_outbox_dir or Path()).glob("*.eml")
    ]
    [mail] = [m for m in mails if m["Subject"] == "Your webhook was disabled"]
    assert mail["To"] == "bob@example.com"
    assert "carriage return" in mail.get_payload(decode=True).decode()
    [anns] = stack.client.get("/api/v1/webhooks", headers=stack.headers).get_json()["items"]
    assert not anns["disabled"]


def test_a_delivery_that_raises_is_a_failed_attempt_retried_on_schedule(
    stack: WebhookStack, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    ann = registered(stack, stack.headers, receiver.url)
    bob = registered(stack, stack.user("bob@example.com"), receiver.url)
    broken = row("broken", {**bob, "secret": "whsec_not base64!"}, "bob@example.com", receiver.url)
    caplog.set_level(logging.ERROR, "video2mp3.notifier.webhooks")
    scheduled_together(stack, broken, receiver, ann)

    delivered_to_ann(receiver, ann)
    wait_for(lambda: record(stack, "broken", bob).attempts, 10, "the broken row's attempt")
    failed = record(stack, "broken", bob)
    assert (failed.attempts, failed.sent_at, failed.last_status) == (1, None, None)
    assert "not sent" in failed.last_excerpt
    retry_in = failed.next_attempt_at - utcnow()  # the first retry's delay, as for a 500
    assert timedelta(0) < retry_in <= RETRY_DELAYS[0]
    with stack.schedule.engine.connect() as conn:  # counted against the endpoint
        since = conn.scalar(sa.select(endpoints.c.failing_since))
    assert since is not None
    [logged] = [r for r in caplog.records if getattr(r, "event_id", None) == "broken"]
    assert logged.webhook_id == bob["id"]  # type: ignore[attr-defined]
    assert logged.exc_info is not None
