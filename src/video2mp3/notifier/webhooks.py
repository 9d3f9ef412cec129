"""Deliver ``job.finished`` to the owner's webhook endpoints, signed per Standard Webhooks.

The handler only schedules (one row per event and endpoint, before the message is acked, in the
delivery record that the emails use too: ``ports.deliveries``); a loop claims and sends what is
due, and marks it. Each attempt re-checks the URL against SSRF and connects to an address that
check returned (no DNS rebinding between check and connect), follows no redirect, and gives up
after ``TIMEOUT_SECONDS``. A non-2xx answer or a timeout is retried after ``RETRY_DELAYS`` with
the same ``webhook-id`` and body; an endpoint that has failed for ``DISABLE_AFTER`` without one
success is disabled, its owner emailed and the gateway told (``webhook.disabled``).

Each delivery is on its own: whatever sending one raises is its failed attempt (counted, logged
with its ids, retried on the schedule) and the batch goes on. A URL that cannot be delivered to
(stored before URLs were parsed strictly: ``ssrf.parse_url``) is given up on at once and its
endpoint disabled then, saying why: no retry could make it deliverable.

Why a table and not delayed redelivery on the bus: retries run for more than a day, so the
schedule must outlive restarts of the notifier and of the broker; the in-process bus of ``video2mp3
dev`` has no durable delay; and the table also remembers what each endpoint answered last.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
from prometheus_client import Counter
from standardwebhooks import Webhook as Signer

from video2mp3.domain.events import Event, JobFinished, WebhookDisabled
from video2mp3.domain.jobs import utcnow
from video2mp3.domain.text import one_line
from video2mp3.domain.webhooks import (
    DISABLE_AFTER,
    EXCERPT_BYTES,
    RETRY_DELAYS,
    TIMEOUT_SECONDS,
    excerpt,
    payload,
)
from video2mp3.errors import Unavailable
from video2mp3.ports.bus import Bus
from video2mp3.ports.deliveries import Delivery, DeliverySchedule
from video2mp3.ports.mail import Mailer
from video2mp3.ssrf import InvalidUrl, Refused, UrlGuard

log = logging.getLogger(__name__)

ATTEMPTS = Counter("video2mp3_webhook_attempts_total", "Webhook delivery attempts", ["outcome"])


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status: int | None  # None: no HTTP answer (refused, unreachable, timed out, not sent)
    excerpt: str
    final: bool = False  # no retry can succeed: the URL cannot be delivered to


class Sender:
    """Sends one delivery over HTTP; never raises for the endpoint's faults."""

    def __init__(self, guard: UrlGuard, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.guard = guard
        self.timeout = timeout

    def send(self, delivery: Delivery) -> Attempt:
        try:
            destination = self.guard.check(delivery.target.url)
        except InvalidUrl as exc:
            return Attempt(False, None, f"its URL cannot be called: {exc.message}", final=True)
        except Refused as exc:
            return Attempt(False, None, f"refused: {exc.message}")
        url = destination.url  # as parsed when the URL was checked: the same parse decides
        now = datetime.now(UTC)
        msg_id = f"msg_{delivery.event_id}"  # the same for every attempt
        headers = {
            "Host": url.netloc.decode(),
            "Content-Type": "application/json",
            "User-Agent": "video2mp3-webhooks",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Signer(delivery.target.secret).sign(msg_id, now, delivery.body),
        }
        # A fresh client per send: a pooled connection must not serve another host's request.
        with httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as http:
            try:
                with http.stream(
                    "POST",
                    url.copy_with(host=destination.addresses[0]),
                    content=delivery.body.encode(),
                    headers=headers,
                    extensions={"sni_hostname": destination.host},
                ) as response:
                    body = b""
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > EXCERPT_BYTES:
                            break
            except httpx.TimeoutException:
                return Attempt(False, None, f"no answer within {self.timeout:g} s")
            except httpx.HTTPError as exc:
                return Attempt(False, None, f"could not deliver: {exc}")
        text = excerpt(body)
        if response.is_redirect:
            text = f"redirects are not followed (to {response.headers.get('location')!r}) {text}"
        return Attempt(response.is_success, response.status_code, text)


class WebhookDeliverer:
    def __init__(
        self,
        schedule: DeliverySchedule,
        sender: Sender,
        mailer: Mailer,
        bus: Bus,
        *,
        mail_from: str,
        public_url: str,
    ) -> None:
        self.deliveries, self.sender, self.mailer, self.bus = schedule, sender, mailer, bus
        self.mail_from = mail_from
        self.public_url = public_url.rstrip("/")
        self.wake = threading.Event()

    def schedule(self, event: Event) -> None:
        """Schedule ``event`` for each endpoint it names (idempotent), and wake the sender.

        One endpoint that cannot be scheduled keeps none of the others from it: the first such
        error is raised after them all, so that the event is retried."""
        data = event.data
        if not isinstance(data, JobFinished) or not data.webhooks:
            return
        link = f"{self.public_url}/api/v1/jobs/{event.job_id}/mp3" if data.mp3_fid else None
        body = json.dumps(
            payload(
                status=data.status,
                job_id=event.job_id,
                occurred_at=event.occurred_at,
                filename=data.filename,
                duration=data.duration,
                size=data.size,
                error_code=data.error_code,
                error_message=data.error_message,
                download_url=link,
            )
        )
        failure: Exception | None = None
        for target in data.webhooks:
            try:
                self.deliveries.schedule(
                    Delivery(event.event_id, target, data.owner.email, body, 0, utcnow())
                )
            except Unavailable:
                raise
            except Exception as exc:
                extra = {"event_id": event.event_id, "webhook_id": target.id}
                log.exception("could not schedule a webhook delivery", extra=extra)
                failure = failure or exc
        self.wake.set()
        if failure is not None:
            raise failure

    def deliver_due(self) -> bool:
        """Attempt every delivery that is due; whether there were any.

        Only an outage of the delivery log (``Unavailable``: nothing can be recorded) ends the
        batch early; the claims of the rest then lapse and they are taken again."""
        due = self.deliveries.due(utcnow())
        for delivery in due:
            try:
                self.attempt(delivery)
            except Unavailable:
                raise
            except Exception:  # recording it failed: it is taken again when its claim lapses
                log.exception("could not record a webhook attempt", extra=_ids(delivery))
        return bool(due)

    def attempt(self, delivery: Delivery) -> None:
        """Send ``delivery`` once and record how it went. Whatever the send raises is this
        delivery's failed attempt, never the caller's."""
        try:
            result = self.sender.send(delivery)
        except Exception as exc:
            log.exception("a webhook delivery failed in video2mp3", extra=_ids(delivery))
            name = type(exc).__name__
            result = Attempt(False, None, f"not sent: an error in video2mp3 ({name})")
        extra = {**_ids(delivery), "status": result.status}
        if result.ok:
            self.deliveries.succeeded(delivery, result.status or 0, result.excerpt)
            ATTEMPTS.labels("delivered").inc()
            log.info("webhook delivered", extra=extra)
            return
        tries = delivery.attempts
        last = result.final or tries >= len(RETRY_DELAYS)
        retry_at = None if last else utcnow() + RETRY_DELAYS[tries]
        failing_since = self.deliveries.failed(delivery, result.status, result.excerpt, retry_at)
        ATTEMPTS.labels("failed" if retry_at else "given_up").inc()
        log.warning("webhook delivery failed: %s", result.excerpt[:200], extra=extra)
        if (result.final or utcnow() - failing_since >= DISABLE_AFTER) and self.deliveries.disable(
            delivery.target.id
        ):
            self._disabled(delivery, failing_since, result)

    def _disabled(self, delivery: Delivery, since: datetime, last: Attempt) -> None:
        """Tell the gateway and the owner; neither failing may fail the delivery's record."""
        if last.final:
            reason = f"{last.excerpt}; register the endpoint again with a URL that can be called"
            why = "its URL cannot be called"
        else:
            reason = (
                f"failing since {since:%Y-%m-%d %H:%M} UTC; last answer: "
                f"{last.status or 'none'}: {last.excerpt}"
            )
            why = f"it has been failing for {DISABLE_AFTER.days} days"
        log.warning("webhook disabled: %s", why, extra=_ids(delivery))
        try:
            self.bus.publish(Event(_job_id(delivery), WebhookDisabled(delivery.target.id, reason)))
        except Exception:
            log.exception("could not tell the gateway of a disabled webhook", extra=_ids(delivery))
        message = EmailMessage()
        message["From"] = self.mail_from
        message["Subject"] = "Your webhook was disabled"
        message.set_content(
            f"Your webhook {delivery.target.id} ({delivery.target.url!r}) was disabled: {why}, "
            "so video2mp3 stopped sending to it.\n\n"
            f"Reason: {reason}\n\n"
            "Fix the endpoint, then register it again (POST /api/v1/webhooks).\n"
        )
        try:
            message["To"] = one_line(delivery.owner_email)
            self.mailer.send(message)
        except Exception:
            log.exception("could not email the owner of a disabled webhook", extra=_ids(delivery))


def _ids(delivery: Delivery) -> dict[str, str]:
    """What names one delivery in the logs."""
    return {"event_id": delivery.event_id, "webhook_id": delivery.target.id}


def _job_id(delivery: Delivery) -> str:
    """The job a delivery is about, for the envelope of ``webhook.disabled``; its event id if the
    body cannot tell."""
    try:
        job_id = json.loads(delivery.body)["data"]["job_id"]
    except (ValueError, TypeError, KeyError):
        return delivery.event_id
    return job_id if isinstance(job_id, str) and job_id else delivery.event_id
