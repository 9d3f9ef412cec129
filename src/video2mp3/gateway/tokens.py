"""Local JWT verification against the auth service's JWKS, cached.

The key set is fetched once and kept; a token with an unknown ``kid`` triggers one refetch (at
most every ``REFRESH_INTERVAL`` seconds, so forged kids cannot hammer auth). That is what lets
auth rotate its signing key without logging anyone out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import jwt

from video2mp3.auth.accounts import AUDIENCE, ISSUER
from video2mp3.auth.keys import ALGORITHM
from video2mp3.errors import Unauthorized
from video2mp3.ports.identity import Identity

REFRESH_INTERVAL = 30.0


@dataclass(frozen=True)
class Principal:
    """The caller a valid token speaks for."""

    user_id: int
    email: str


class TokenVerifier:
    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        """The principal of a valid, unexpired token; ``Unauthorized`` otherwise."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._key(str(kid))
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
            return Principal(user_id=int(claims["sub"]), email=str(claims["email"]))
        except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
            raise Unauthorized(f"invalid token: {exc}") from None

    def _key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at > REFRESH_INTERVAL:
                key_set = jwt.PyJWKSet.from_dict(self._identity.jwks())
                self._keys = {k.key_id: k for k in key_set.keys if k.key_id}
                self._fetched_at = time.monotonic()
            if kid not in self._keys:
                raise Unauthorized("token signed by an unknown key")
            return self._keys[kid]
