"""Configuration from the environment (``VIDEO2MP3_*``), read once per process in ``main()``.

One frozen ``Settings`` object is passed down explicitly; nothing else reads ``os.environ``.
Each service names what it needs with ``require``; a missing or malformed setting stops the
service at start-up with one line naming the variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from video2mp3.domain.storage import Retention, parse_duration
from video2mp3.errors import SettingsError
from video2mp3.ssrf import Network, parse_networks

PREFIX = "VIDEO2MP3_"

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]  # 0, 45s, 90m, 12h, 7d

_SCHEMES: dict[str, tuple[str, ...]] = {
    "auth_db_url": ("mysql+pymysql://", "sqlite://"),
    "jobs_db_url": ("mysql+pymysql://", "sqlite://"),
    "notifier_db_url": ("mysql+pymysql://", "sqlite://"),
    "broker_url": ("amqp://", "amqps://", "memory://"),
    "mongodb_url": ("mongodb://", "mongodb+srv://"),
    "smtp_url": ("smtp://", "smtps://"),
    "auth_url": ("http://", "https://", "inprocess://"),
    "public_url": ("http://", "https://"),
}


class Settings(BaseSettings):
    """Every setting of every service; each service checks the ones it uses."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")

    auth_db_url: str | None = None
    jobs_db_url: str | None = None
    notifier_db_url: str | None = None
    broker_url: str | None = None
    broker_prefix: str = Field("video2mp3", pattern=r"^[a-z0-9][a-z0-9._-]{0,60}$")
    mongodb_url: str | None = None
    mongodb_database: str = "video2mp3"
    blob_dir: Path | None = None
    smtp_url: str | None = None
    mail_outbox_dir: Path | None = None
    mail_from: str = "video2mp3 <noreply@localhost>"
    auth_url: str | None = None
    public_url: str = "http://127.0.0.1:8080"
    jwt_key_dir: Path | None = None
    jwt_ttl_seconds: int = Field(3600, ge=60, le=7 * 86400)
    link_key_dir: Path | None = None
    link_ttl_seconds: int = Field(86400, ge=60, le=30 * 86400)
    signup_enabled: bool = True
    max_upload_bytes: int = Field(2 * 1024**3, gt=0)
    # A video readable front to back starts converting once this much has arrived (0: after the
    # upload): a smaller one is over before an early start would gain much.
    stream_after_bytes: int = Field(16 * 1024**2, ge=0)
    conversion_timeout_seconds: int = Field(1200, gt=0)
    max_duration_seconds: int = Field(4 * 3600, gt=0)
    ffmpeg: str | None = None
    # Cores one conversion may use: a long input is encoded in that many segments at once.
    converter_cores: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1, le=64)
    # Inputs at least this long are spread across all converters (segments on the bus); 0: never.
    # Worth it with several converters sharing a blob store; `video2mp3 dev` keeps one's cores.
    fan_out_after_seconds: int = Field(120, ge=0)
    keep_videos_for: Duration = timedelta(0)
    keep_mp3s_for: Duration = timedelta(days=7)  # 0 keeps them
    quota_bytes: int = Field(20 * 1024**3, gt=0)
    max_active_jobs: int = Field(20, gt=0)
    # What an upload past max_active_jobs is told to wait (Retry-After) before it tries again.
    # Clients also try again as soon as one of their own jobs ends, so this mostly paces a wait
    # on jobs started elsewhere.
    active_jobs_retry_seconds: int = Field(10, ge=1, le=3600)
    cache_across_owners: bool = False
    orphan_grace: Duration = timedelta(days=1)
    web_workers: int = Field(2, ge=1, le=64)
    # Requests one web worker serves at once; the admin listener is apart from them.
    web_threads: int = Field(8, ge=1, le=256)
    # Pages each gateway process keeps live (an event stream each, holding a thread of its own
    # beyond web_threads); past them a page polls. README, "What an open page costs".
    live_pages: int = Field(24, ge=0, le=4096)
    # Of those, the pages one user may hold: one account cannot take every stream.
    live_pages_per_user: int = Field(4, ge=1, le=4096)
    # How long a stopping web service lets requests in flight (uploads, downloads) finish.
    drain_seconds: int = Field(300, ge=0, le=3600)
    # argon2id cost per password hash: each hash in flight holds argon2_memory_kib of memory
    # (docs/DEPLOY.md measures it against the auth pod's memory limit).
    argon2_memory_kib: int = Field(19 * 1024, ge=8 * 1024, le=1024 * 1024)
    argon2_time_cost: int = Field(2, ge=1, le=20)
    argon2_parallelism: int = Field(1, ge=1, le=16)
    proxy_hops: int = Field(0, ge=0, le=5)
    client_timeout_seconds: int = Field(30, ge=1, le=3600)
    webhook_allowed_networks: str = ""  # comma-separated CIDRs webhooks may reach anyway
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator(*_SCHEMES)
    @classmethod
    def _known_scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = str(info.field_name)
        if value is None:
            return value
        if not value.startswith(_SCHEMES[name]):
            raise ValueError(f"must start with one of {', '.join(_SCHEMES[name])}")
        try:
            urlsplit(value).port  # noqa: B018 - parsing is the check
        except ValueError:
            raise ValueError("the port is not a number") from None
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def configured_public_url(self) -> str | None:
        """``public_url`` if it was configured, else ``None``: the gateway then builds its links
        from the request, while the notifier (which has no request) uses the default."""
        return self.public_url if "public_url" in self.model_fields_set else None

    @property
    def allowed_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.webhook_allowed_networks)

    def retention(self) -> Retention:
        keep_mp3s = self.keep_mp3s_for if self.keep_mp3s_for > timedelta(0) else None
        return Retention(keep_videos_for=self.keep_videos_for, keep_mp3s_for=keep_mp3s)

    def require(self, service: str, *names: str) -> None:
        """Raise ``SettingsError`` naming the first of ``names`` that is unset."""
        for name in names:
            if getattr(self, name) in (None, ""):
                raise SettingsError(f"{PREFIX}{name.upper()} is required by {service}")

    def require_one(self, service: str, *names: str) -> None:
        """Raise ``SettingsError`` unless at least one of ``names`` is set."""
        if all(getattr(self, name) in (None, "") for name in names):
            listed = " or ".join(PREFIX + n.upper() for n in names)
            raise SettingsError(f"{listed} is required by {service}")


def load(**overrides: object) -> Settings:
    """Read the environment (``overrides`` win); a bad value raises ``SettingsError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = PREFIX + str(err["loc"][0]).upper() if err["loc"] else PREFIX
        raise SettingsError(f"{name}: {err['msg']}") from None
