"""Turn ``job.finished`` (sent by the gateway once per job) into an email to its owner and
deliveries to the owner's webhooks (``notifier.webhooks``)."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import make_msgid

from prometheus_client import Counter

from video2mp3.domain.events import Event, JobFinished
from video2mp3.domain.jobs import mp3_filename
from video2mp3.notifier.webhooks import WebhookDeliverer
from video2mp3.ports.mail import Mailer
from video2mp3.signing import DownloadLinks

log = logging.getLogger(__name__)

EMAILS = Counter("video2mp3_emails_total", "Emails sent, by event type", ["event_type"])


class Notifier:
    def __init__(
        self,
        mailer: Mailer,
        links: DownloadLinks,
        *,
        mail_from: str,
        public_url: str,
        webhooks: WebhookDeliverer | None = None,
    ) -> None:
        self.mailer = mailer
        self.links = links
        self.webhooks = webhooks
        self.mail_from = mail_from
        self.public_url = public_url.rstrip("/")

    def handle(self, event: Event) -> None:
        if self.webhooks is not None:
            self.webhooks.schedule(event)  # idempotent, so first: a failed email retries it too
        message = self.compose(event)
        if message is not None:
            self.mailer.send(message)
            EMAILS.labels(event.type).inc()
            log.info("emailed the owner", extra={"event_type": event.type})

    def compose(self, event: Event) -> EmailMessage | None:
        """The email for ``event``, or ``None`` if it calls for none."""
        data = event.data
        if not isinstance(data, JobFinished):
            return None
        if data.status == "succeeded" and data.mp3_fid:
            link = self.links.url(self.public_url, data.owner.id, data.mp3_fid)
            days = self.links.ttl / 86400
            subject = f"Your MP3 is ready: {mp3_filename(data.filename)}"
            body = (
                f"Your video {data.filename!r} is now an MP3 "
                f"({data.duration or 0:.1f} s, {(data.size or 0) / 1e6:.1f} MB).\n\n"
                f"Download it: {link}\n"
                f"(the link works for {days:g} day{'s' if days != 1 else ''}; "
                f"after that, download it from {self.public_url}/)\n\n"
                f"Job id:      {event.job_id}\n"
                f"MP3 file id: {data.mp3_fid}\n"
                + (f"The MP3 is kept until {data.expires_at}.\n" if data.expires_at else "")
            )
        else:
            subject = f"We could not convert {data.filename}"
            body = (
                f"Your video {data.filename!r} could not be converted to MP3.\n\n"
                f"Reason: {data.error_message} ({data.error_code})\n"
                f"Job id: {event.job_id}\n"
            )
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = data.owner.email
        message["Subject"] = subject
        # One Message-ID per event, so a redelivered event can be recognised downstream.
        message["Message-ID"] = make_msgid(idstring=event.event_id, domain="video2mp3")
        message.set_content(body)
        return message
