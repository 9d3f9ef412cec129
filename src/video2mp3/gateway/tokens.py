"""Local JWT verification against the auth service's JWKS, cached.

The key set is kept for ``KEYSET_TTL`` seconds, so a key that auth stops publishing stops being
trusted; a token with an unknown ``kid`` triggers a refetch sooner (at most every
``REFRESH_INTERVAL`` seconds, so forged kids cannot hammer auth). That is what lets auth rotate
its signing key without logging anyone out. While auth is unreachable the cached set is used.
Every refused token gets the same answer (``REFUSED``); why the library refused it is logged at
debug level only, as it tells a caller nothing it needs and an attacker what to try next.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import jwt

from video2mp3.domain.tokens import ALGORITHM, AUDIENCE, ISSUER
from video2mp3.errors import Unauthorized, Unavailable
from video2mp3.ports.identity import Identity

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 30.0
KEYSET_TTL = 300.0  # auth's JWKS says max-age=300
REFUSED = "the token is missing, expired or invalid; log in again"


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
            log.debug("token refused: %s", exc)
            raise Unauthorized(REFUSED) from None

    def _key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > KEYSET_TTL or (kid not in self._keys and age > REFRESH_INTERVAL):
                self._refresh()
            if kid not in self._keys:
                raise jwt.InvalidTokenError("token signed by an unknown key")
            return self._keys[kid]

    def _refresh(self) -> None:
        try:
            key_set = jwt.PyJWKSet.from_dict(self._identity.jwks())
        except Unavailable:
            if not self._keys:
                raise  # nothing to verify with: 503, and the next request asks again
            log.warning("auth is unreachable: verifying with the cached keys")
            self._fetched_at = time.monotonic()  # ask again later, not on every request
            return
        except jwt.PyJWKSetError as exc:
            raise Unavailable(f"auth publishes no usable key: {exc}") from None
        self._keys = {k.key_id: k for k in key_set.keys if k.key_id}
        self._fetched_at = time.monotonic()
