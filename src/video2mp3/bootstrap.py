"""Wiring: build each service's adapters, application and workers from ``Settings``.

The URL scheme or the setting that is present picks the adapter (kombu-style aliases), so code
never imports a backend directly. ``video2mp3 serve`` and ``video2mp3 dev`` share these builders:
which handler consumes which queue is said once, in the ``*_worker`` builders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from video2mp3 import migrations
from video2mp3.adapters.sql.deliveries import SQLDeliveryLog
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.jobs import SQLJobRepository
from video2mp3.adapters.sql.login_failures import SQLLoginFailures
from video2mp3.adapters.sql.users import SQLUserRepository
from video2mp3.adapters.sql.webhooks import SQLWebhookRepository
from video2mp3.auth.accounts import Accounts
from video2mp3.auth.keys import KeyRing
from video2mp3.auth.throttle import LoginThrottle
from video2mp3.converter.workspace import remove_leftovers
from video2mp3.gateway import background
from video2mp3.gateway.app import create_app as create_gateway_app
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.webhooks import Webhooks
from video2mp3.health import Check
from video2mp3.notifier.webhooks import Sender, WebhookDeliverer
from video2mp3.notifier.worker import Notifier
from video2mp3.ports.blobs import BlobStore
from video2mp3.ports.bus import Bus, GiveUp, Handler
from video2mp3.ports.identity import Identity
from video2mp3.ports.jobs import JobRepository
from video2mp3.ports.mail import Mailer
from video2mp3.settings import Settings
from video2mp3.signing import DownloadLinks, SecretRing
from video2mp3.ssrf import UrlGuard
from video2mp3.worker import Loop, repeat

if TYPE_CHECKING:
    from video2mp3.converter.binary import Ffmpeg

log = logging.getLogger(__name__)


def create_schemas(settings: Settings, *services: str) -> None:
    """Migrate the databases ``services`` own to the newest schema, before any worker starts."""
    if "auth" in services:
        settings.require("auth", "auth_db_url")
        migrations.upgrade(create_engine(str(settings.auth_db_url)), "auth")
    if "gateway" in services:
        settings.require("the gateway", "jobs_db_url")
        migrations.upgrade(create_engine(str(settings.jobs_db_url)), "gateway")
    if "notifier" in services:
        settings.require("the notifier", "notifier_db_url")
        migrations.upgrade(create_engine(str(settings.notifier_db_url)), "notifier")


def blob_store(settings: Settings, service: str) -> BlobStore:
    settings.require_one(service, "mongodb_url", "blob_dir")
    if settings.mongodb_url:
        from video2mp3.adapters.blobs.gridfs import GridFSBlobStore

        return GridFSBlobStore(settings.mongodb_url, settings.mongodb_database)
    from video2mp3.adapters.blobs.local import LocalBlobStore

    assert settings.blob_dir is not None
    return LocalBlobStore(settings.blob_dir)


def bus(settings: Settings, service: str) -> Bus:
    settings.require(service, "broker_url")
    assert settings.broker_url is not None
    if settings.broker_url.startswith("memory://"):
        from video2mp3.adapters.bus.inprocess import InProcessBus

        return InProcessBus()
    from video2mp3.adapters.bus.rabbitmq import RabbitMQBus

    return RabbitMQBus(settings.broker_url, prefix=settings.broker_prefix)


def mailer(settings: Settings, service: str) -> Mailer:
    settings.require_one(service, "smtp_url", "mail_outbox_dir")
    if settings.smtp_url:
        from video2mp3.adapters.mail.smtp import SMTPMailer

        return SMTPMailer(settings.smtp_url)
    from video2mp3.adapters.mail.outbox import OutboxMailer

    assert settings.mail_outbox_dir is not None
    return OutboxMailer(settings.mail_outbox_dir)


def identity(settings: Settings) -> Identity:
    settings.require("the gateway", "auth_url")
    from video2mp3.adapters.identity.http import HTTPIdentity

    assert settings.auth_url is not None
    return HTTPIdentity(settings.auth_url)


def accounts(settings: Settings) -> Accounts:
    settings.require("auth", "auth_db_url", "jwt_key_dir")
    assert settings.auth_db_url is not None
    assert settings.jwt_key_dir is not None
    engine = create_engine(settings.auth_db_url)
    return Accounts(
        SQLUserRepository(engine),
        KeyRing.load(settings.jwt_key_dir),
        LoginThrottle(SQLLoginFailures(engine)),
        token_ttl=settings.jwt_ttl_seconds,
        signup_enabled=settings.signup_enabled,
        hasher=PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        ),
    )


def links(settings: Settings) -> DownloadLinks:
    """Signed download links (and the CSRF tokens the gateway derives from the same keys)."""
    settings.require("the gateway and the notifier", "link_key_dir")
    assert settings.link_key_dir is not None
    return DownloadLinks(SecretRing.load(settings.link_key_dir), settings.link_ttl_seconds)


def jobs(settings: Settings) -> JobRepository:
    settings.require("the gateway", "jobs_db_url")
    return SQLJobRepository(create_engine(str(settings.jobs_db_url)), settings.retention())


def gateway_app(
    settings: Settings,
    identity: Identity,
    jobs: JobRepository,
    blobs: BlobStore,
    *,
    on_queued: Callable[[], None] = lambda: None,
) -> Flask:
    """The gateway's web app. It starts nothing: its background work is ``gateway_worker``."""
    service = Gateway(
        jobs,
        blobs,
        settings.max_upload_bytes,
        links(settings),
        on_queued=on_queued,
        quota_bytes=settings.quota_bytes,
        max_active_jobs=settings.max_active_jobs,
        active_jobs_retry_seconds=settings.active_jobs_retry_seconds,
        cache_across_owners=settings.cache_across_owners,
        stream_after_bytes=settings.stream_after_bytes,
    )
    settings.require("the gateway", "jobs_db_url")
    registrations = SQLWebhookRepository(create_engine(str(settings.jobs_db_url)))
    webhooks = Webhooks(registrations, UrlGuard(settings.allowed_networks))
    app = create_gateway_app(
        service,
        webhooks,
        identity,
        {},
        signup_enabled=settings.signup_enabled,
        public_url=settings.configured_public_url or "",
        max_streams=settings.live_pages,
        max_streams_per_user=settings.live_pages_per_user,
    )
    if hops := settings.proxy_hops:  # the client's address, scheme and host, as the proxies saw
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app


@dataclass(frozen=True)
class Worker:
    """A worker service: the loops to run and the readiness checks of what they depend on."""

    loops: dict[str, Loop]
    checks: dict[str, Check]


def gateway_worker(
    settings: Settings, jobs: JobRepository, blobs: BlobStore, bus: Bus
) -> tuple[Worker, background.Background]:
    """The outbox relay, the tracker of converter events, the sweep and the orphan collector."""
    # Progress arrives every second while ffmpeg runs, but the conversion timeout bounds ffmpeg
    # only: copying the video in, probing it (up to a minute) and storing the MP3 send no news.
    # Twice the timeout plus five minutes for those, so a small timeout never fails a live job.
    stalled_after = timedelta(seconds=2 * settings.conversion_timeout_seconds + 300)
    webhooks = SQLWebhookRepository(create_engine(str(settings.jobs_db_url)))
    work = background.Background(
        jobs, blobs, bus, webhooks, stalled_after=stalled_after, orphan_grace=settings.orphan_grace
    )
    checks = {"database": jobs.ping, "blobs": blobs.ping, "bus": bus.ping}
    return Worker(work.loops(), checks), work


def converter_checks(settings: Settings) -> Ffmpeg:
    """What the converter needs before its first job, checked: PyAV, and an ffmpeg fit to
    convert (``binary``) that runs under the limits of the longest job. The ffmpeg chosen."""
    # Imported here: the media stack needs the `converter` extra, which the web images lack.
    from video2mp3.converter.binary import choose_ffmpeg
    from video2mp3.converter.ffmpeg import check_ffmpeg
    from video2mp3.converter.probing import check_probe

    check_probe()
    ffmpeg = choose_ffmpeg(settings.ffmpeg)
    check_ffmpeg(ffmpeg.path, settings.conversion_timeout_seconds, settings.max_duration_seconds)
    return ffmpeg


def converter_worker(settings: Settings, blobs: BlobStore, bus: Bus) -> Worker:
    from video2mp3.converter.fanout import SegmentEncoder
    from video2mp3.converter.media import Transcoder
    from video2mp3.converter.worker import Converter

    ffmpeg = converter_checks(settings)
    for passed_over in ffmpeg.passed_over:
        log.warning("ffmpeg passed over: %s", passed_over)
    log.info("converting with %s", ffmpeg.describe())
    remove_leftovers()
    transcoder = Transcoder(
        ffmpeg.path,
        timeout=settings.conversion_timeout_seconds,
        max_seconds=settings.max_duration_seconds,
        cores=settings.converter_cores,
        fan_out_after=settings.fan_out_after_seconds or None,
    )
    transcoder.start()  # the probe's sandbox, booted before the first job comes
    converter = Converter(blobs, bus, transcoder)
    loops = {"converter": consume(bus, "converter", converter.handle, converter.give_up)}
    # Segments of long inputs spread by any converter: one at a time per core (LAME uses one).
    encoder = SegmentEncoder(blobs, bus, transcoder)
    for core in range(settings.converter_cores):
        loops[f"segments-{core}"] = consume(bus, "segments", encoder.handle, converter.give_up)
    return Worker(loops, {"bus": bus.ping, "blobs": blobs.ping})


def notifier_worker(settings: Settings, mailer: Mailer, bus: Bus) -> Worker:
    """Emails, and webhook deliveries: scheduled by the consumer, sent by their own loop; both
    recorded in one delivery log."""
    settings.require("the notifier", "notifier_db_url")
    deliveries = SQLDeliveryLog(create_engine(str(settings.notifier_db_url)))
    webhooks = WebhookDeliverer(
        deliveries,
        Sender(UrlGuard(settings.allowed_networks)),
        mailer,
        bus,
        mail_from=settings.mail_from,
        public_url=settings.public_url,
    )
    notifier = Notifier(
        mailer,
        links(settings),
        deliveries,
        mail_from=settings.mail_from,
        public_url=settings.public_url,
        webhooks=webhooks,
    )
    loops = {
        "notifier": consume(bus, "notifier", notifier.handle),
        "webhooks": lambda stop: repeat(webhooks.deliver_due, stop, 1.0, webhooks.wake),
    }
    return Worker(loops, {"bus": bus.ping, "mail": mailer.ping, "database": deliveries.ping})


def consume(bus: Bus, queue: str, handler: Handler, give_up: GiveUp | None = None) -> Loop:
    """A loop that feeds ``queue``'s events (``QUEUES`` says which) to ``handler``."""
    return lambda stop: bus.consume(queue, handler, stop, give_up)
