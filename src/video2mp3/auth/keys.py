"""The JWT signing keys: a directory of PEM Ed25519 private keys.

Every key in the directory is published in the JWKS; the last by file name signs. Rotating is
adding a newer file (gateways refetch the JWKS when they meet an unknown ``kid``) and deleting the
old one once the longest-lived token it signed has expired: nobody is logged out.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from video2mp3.domain.tokens import ALGORITHM
from video2mp3.errors import SettingsError


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


class KeyRing:
    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise SettingsError("VIDEO2MP3_JWT_KEY_DIR holds no *.pem Ed25519 private key")
        self.keys = keys

    @property
    def signing(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    @classmethod
    def load(cls, folder: Path) -> KeyRing:
        """Load every ``*.pem`` of ``folder``, sorted by name."""
        keys = []
        for path in sorted(folder.glob("*.pem")):
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise SettingsError(f"VIDEO2MP3_JWT_KEY_DIR: {path.name} is not an Ed25519 key")
            keys.append(SigningKey(_thumbprint(key), key))
        return cls(keys)


def generate(folder: Path) -> Path:
    """Write a new Ed25519 key named after the current time, so it sorts last and signs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}.pem"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def _thumbprint(key: Ed25519PrivateKey) -> str:
    """RFC 7638 JWK thumbprint: a stable ``kid`` derived from the public key."""
    jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
