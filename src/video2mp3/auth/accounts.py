"""Sign-up, login and token issuing: the auth service's use cases."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from email_validator import EmailNotValidError, validate_email

from video2mp3.auth.keys import KeyRing
from video2mp3.auth.throttle import LoginThrottle
from video2mp3.domain.tokens import ALGORITHM, AUDIENCE, ISSUER
from video2mp3.domain.users import User
from video2mp3.errors import Forbidden, InvalidRequest, Unauthorized, Unavailable
from video2mp3.ports.users import UserRepository

MIN_PASSWORD, MAX_PASSWORD = 8, 1024
# Each argon2 run takes a core for tens of milliseconds: this many at once per process, so that a
# flood of logins queues (then gets 503) instead of taking every core from the other requests.
ARGON2_SLOTS = 2
ARGON2_WAIT = 10.0
T = TypeVar("T")


def normalize_email(email: str) -> str:
    """The canonical form of an email address; ``InvalidRequest`` if it is not one."""
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidRequest(f"invalid email: {exc}") from None


class Accounts:
    def __init__(
        self,
        users: UserRepository,
        keys: KeyRing,
        throttle: LoginThrottle,
        *,
        token_ttl: int,
        signup_enabled: bool,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.users = users
        self.keys = keys
        self.throttle = throttle
        self.token_ttl = token_ttl
        self.signup_enabled = signup_enabled
        # Each hash in flight holds the hasher's memory cost: it bounds auth's memory (DEPLOY.md).
        self.hasher = hasher or PasswordHasher()
        # Verified when the email is unknown, so that a miss costs as much as a wrong password.
        self._dummy_hash = self.hasher.hash(uuid.uuid4().hex)
        self._slots = threading.BoundedSemaphore(ARGON2_SLOTS)

    def _hashing(self, work: Callable[[], T]) -> T:
        if not self._slots.acquire(timeout=ARGON2_WAIT):
            raise Unavailable("too many logins at once; try again in a moment", retry_after=1)
        try:
            return work()
        finally:
            self._slots.release()

    def register(self, email: str, password: str) -> User:
        """Create an account; ``InvalidRequest``, ``Conflict``, or ``Forbidden`` if disabled."""
        if not self.signup_enabled:
            raise Forbidden("self sign-up is disabled on this server")
        email = normalize_email(email)
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise InvalidRequest(
                f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long"
            )
        return self.users.add(email, self._hashing(lambda: self.hasher.hash(password)))

    def authenticate(self, email: str, password: str, address: str) -> User:
        """The user with these credentials, else ``Unauthorized`` (same answer for any miss).

        ``TooManyRequests`` while the account or the client ``address`` is throttled
        (``throttle``), before any password is checked.
        """
        try:
            canonical: str | None = normalize_email(email)
        except InvalidRequest:
            canonical = None  # no account has it; its failures still count, under a bounded key
        key = canonical or email.strip().lower()[:254]
        self.throttle.check(key, address)
        user = self.users.by_email(canonical) if canonical else None
        stored = user.password_hash if user else self._dummy_hash
        try:
            self._hashing(lambda: self.hasher.verify(stored, password))
        except (VerifyMismatchError, InvalidHashError):
            user = None
        if user is None:
            self.throttle.failed(key, address)
            raise Unauthorized("invalid email or password")
        self.throttle.succeeded(key)
        if self.hasher.check_needs_rehash(user.password_hash):
            rehashed = self._hashing(lambda: self.hasher.hash(password))
            self.users.set_password_hash(user.id, rehashed)
        return user

    def issue_token(self, user: User) -> str:
        """A signed JWT for ``user``, valid for ``token_ttl`` seconds."""
        now = int(time.time())
        claims = {
            "sub": str(user.id),
            "email": user.email,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self.token_ttl,
            "jti": uuid.uuid4().hex,
        }
        key = self.keys.signing
        return jwt.encode(claims, key.private_key, ALGORITHM, headers={"kid": key.kid})

    def login(self, email: str, password: str, address: str) -> str:
        """A token for these credentials, tried from the client ``address``."""
        return self.issue_token(self.authenticate(email, password, address))
