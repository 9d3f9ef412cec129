"""Turn ``job.finished`` (sent by the gateway once per job) into one email to its owner and
deliveries to the owner's webhooks (``notifier.webhooks``).

The bus delivers at least once; the ``DeliveryLog`` makes the email go out once per event whatever
the redeliveries, and its Message-ID is derived from the event id, so that the rare resend after
a crash (see ``adapters.sql.deliveries``) is recognisable downstream as the same message.
"""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage
from email.utils import parseaddr

from prometheus_client import Counter

from video2mp3.domain.events import Event, JobFinished
from video2mp3.domain.jobs import mp3_filename
from video2mp3.domain.text import one_line
from video2mp3.errors import Unavailable
from video2mp3.notifier.webhooks import WebhookDeliverer
from video2mp3.ports.deliveries import EMAIL, Claim, DeliveryLog
from video2mp3.ports.mail import Mailer
from video2mp3.signing import DownloadLinks

log = logging.getLogger(__name__)

EMAILS = Counter("video2mp3_emails_total", "Emails sent, by event type", ["event_type"])
DUPLICATES = Counter(
    "video2mp3_emails_skipped_total", "Redelivered events whose email had been sent already"
)


class Notifier:
    def __init__(
        self,
        mailer: Mailer,
        links: DownloadLinks,
        deliveries: DeliveryLog,
        *,
        mail_from: str,
        public_url: str,
        webhooks: WebhookDeliverer | None = None,
    ) -> None:
        self.mailer = mailer
        self.links = links
        self.deliveries = deliveries
        self.webhooks = webhooks
        self.mail_from = mail_from
        self.public_url = public_url.rstrip("/")
        # Sent, but the database was down when we tried to record it: retries record, not resend.
        self._unrecorded: set[str] = set()

    def handle(self, event: Event) -> None:
        """Email the owner and schedule the webhook deliveries, each once whatever the
        redeliveries. An endpoint that cannot be scheduled fails the event (the bus retries it)
        only once the email is sent."""
        unscheduled: Exception | None = None
        if self.webhooks is not None:
            try:  # idempotent, so first: a failed email retries it too
                self.webhooks.schedule(event)
            except Unavailable:
                raise
            except Exception as exc:
                unscheduled = exc
        self.email(event)
        if unscheduled is not None:
            raise unscheduled

    def email(self, event: Event) -> None:
        """Send the owner the email ``event`` calls for, unless it was sent before."""
        message = self.compose(event)
        if message is None:
            return
        if event.event_id not in self._unrecorded:
            if self.deliveries.claim(event.event_id, EMAIL) is Claim.DONE:
                DUPLICATES.inc()
                log.info("email sent before; not again", extra={"event_type": event.type})
                return
            self.mailer.send(message)
            self._unrecorded.add(event.event_id)
            EMAILS.labels(event.type).inc()
            log.info("emailed the owner", extra={"event_type": event.type})
        self.deliveries.mark_sent(event.event_id, EMAIL)
        self._unrecorded.discard(event.event_id)

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
        message["To"] = one_line(data.owner.email)
        # File names come from users: a line break in a header would make it unsendable.
        message["Subject"] = one_line(subject)
        message["Message-ID"] = self.message_id(event)
        message.set_content(body)
        return message

    def message_id(self, event: Event) -> str:
        """The same for every delivery of ``event``, so duplicates are recognisable downstream."""
        domain = parseaddr(self.mail_from)[1].rpartition("@")[2] or "video2mp3"
        local = re.sub(r"[^A-Za-z0-9.-]", "", event.event_id)
        return f"<{local}.{EMAIL}@{re.sub(r'[^A-Za-z0-9.-]', '', domain) or 'video2mp3'}>"
