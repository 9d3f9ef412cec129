"""HMAC keys the gateway and the notifier share, and the signed download links made with them.

``SecretRing`` is a directory of random keys (``VIDEO2MP3_LINK_KEY_DIR``), rotated like the JWT
keys: the newest by file name signs, every key verifies, so adding a key breaks nothing and an
old key is deleted once the longest-lived link it signed has expired. ``DownloadLinks`` turns
(owner, MP3 blob id) into a token that opens that one MP3 until it expires, with no header: what
an email, ``curl -OJ`` and an ``<audio>`` element need. The token is checked against the job
when used, so deleting the job kills its links. Standard library only: the notifier and the CLI
import this module without the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from video2mp3.errors import Forbidden, NotFound, SettingsError

KEY_BYTES = 32
SETTING = "VIDEO2MP3_LINK_KEY_DIR"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Secret:
    kid: str
    key: bytes


class SecretRing:
    """HMAC-SHA256 keys: ``sign`` with the newest, ``verify`` with any."""

    def __init__(self, secrets_: list[Secret]) -> None:
        if not secrets_:
            raise SettingsError(f"{SETTING} holds no *.key file (make one: video2mp3 keygen)")
        self.secrets = secrets_
        self._by_kid = {s.kid: s for s in secrets_}

    @classmethod
    def load(cls, folder: Path) -> SecretRing:
        """Every ``*.key`` of ``folder`` (hex text), sorted by name: the last one signs."""
        found = []
        for path in sorted(folder.glob("*.key")):
            try:
                key = bytes.fromhex(path.read_text().strip())
            except ValueError:
                raise SettingsError(f"{SETTING}: {path.name} is not hex text") from None
            if len(key) < KEY_BYTES:
                raise SettingsError(f"{SETTING}: {path.name} is shorter than {KEY_BYTES} bytes")
            found.append(Secret(hashlib.sha256(key).hexdigest()[:12], key))
        return cls(found)

    def sign(self, purpose: str, message: str) -> str:
        """``<kid>.<mac>`` for ``message``; ``purpose`` keeps a MAC made for one use from
        passing for another."""
        newest = self.secrets[-1]
        return f"{newest.kid}.{self._mac(newest, purpose, message)}"

    def verify(self, purpose: str, message: str, signature: str) -> bool:
        """Whether ``signature`` is ``sign(purpose, message)`` under any key of the ring."""
        kid, _, mac = signature.partition(".")
        secret = self._by_kid.get(kid)
        return secret is not None and hmac.compare_digest(
            mac.encode(), self._mac(secret, purpose, message).encode()
        )

    @staticmethod
    def _mac(secret: Secret, purpose: str, message: str) -> str:
        digest = hmac.new(secret.key, f"{purpose}\n{message}".encode(), hashlib.sha256)
        return _b64(digest.digest())


def generate(folder: Path) -> Path:
    """Write a new key named after the current time, so it sorts last and signs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}.key"
    path.touch(0o600)
    path.write_text(secrets.token_hex(KEY_BYTES) + "\n")
    return path


@dataclass(frozen=True)
class LinkTarget:
    """What a valid download token opens: the owner's MP3 with this blob id."""

    owner_id: int
    mp3_fid: str


class DownloadLinks:
    """Tokens ``<owner>.<mp3 fid>.<expiry>.<kid>.<mac>`` for ``/mp3/<token>``."""

    PURPOSE = "download"

    def __init__(self, ring: SecretRing, ttl_seconds: int) -> None:
        self.ring = ring
        self.ttl = ttl_seconds

    def token(self, owner_id: int, mp3_fid: str, *, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl)
        message = f"{owner_id}.{_b64(mp3_fid.encode())}.{expires}"
        return f"{message}.{self.ring.sign(self.PURPOSE, message)}"

    def url(self, base_url: str, owner_id: int, mp3_fid: str) -> str:
        return f"{base_url.rstrip('/')}/mp3/{self.token(owner_id, mp3_fid)}"

    def open(self, token: str, *, now: float | None = None) -> LinkTarget:
        """The target of a genuine token; ``NotFound`` for a forged or garbled one (nothing
        told apart), ``Forbidden`` (``link_expired``) once it has expired."""
        parts = token.split(".")
        if len(parts) != 5 or not parts[0].isdigit() or not parts[2].isdigit():
            raise NotFound("no such download link")
        message, signature = ".".join(parts[:3]), ".".join(parts[3:])
        if not self.ring.verify(self.PURPOSE, message, signature):
            raise NotFound("no such download link")
        if int(parts[2]) < (time.time() if now is None else now):
            raise Forbidden(
                "this download link has expired: the page and the API give fresh ones",
                code="link_expired",
            )
        fid = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
        return LinkTarget(int(parts[0]), fid)
