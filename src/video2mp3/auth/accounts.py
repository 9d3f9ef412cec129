"""Sign-up, login and token issuing: the auth service's use cases."""

from __future__ import annotations

import time
import uuid

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from email_validator import EmailNotValidError, validate_email

from video2mp3.auth.keys import KeyRing
from video2mp3.domain.tokens import ALGORITHM, AUDIENCE, ISSUER
from video2mp3.domain.users import User
from video2mp3.errors import Forbidden, InvalidRequest, Unauthorized
from video2mp3.ports.users import UserRepository

MIN_PASSWORD, MAX_PASSWORD = 8, 1024


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
        *,
        token_ttl: int,
        signup_enabled: bool,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.users = users
        self.keys = keys
        self.token_ttl = token_ttl
        self.signup_enabled = signup_enabled
        # Each hash in flight holds the hasher's memory cost: it bounds auth's memory (DEPLOY.md).
        self.hasher = hasher or PasswordHasher()
        # Verified when the email is unknown, so that a miss costs as much as a wrong password.
        self._dummy_hash = self.hasher.hash(uuid.uuid4().hex)

    def register(self, email: str, password: str) -> User:
        """Create an account; ``InvalidRequest``, ``Conflict``, or ``Forbidden`` if disabled."""
        if not self.signup_enabled:
            raise Forbidden("self sign-up is disabled on this server")
        email = normalize_email(email)
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise InvalidRequest(
                f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long"
            )
        return self.users.add(email, self.hasher.hash(password))

    def authenticate(self, email: str, password: str) -> User:
        """The user with these credentials, else ``Unauthorized`` (same answer for any miss)."""
        try:
            user = self.users.by_email(normalize_email(email))
        except InvalidRequest:
            user = None
        try:
            self.hasher.verify(user.password_hash if user else self._dummy_hash, password)
        except (VerifyMismatchError, InvalidHashError):
            user = None
        if user is None:
            raise Unauthorized("invalid email or password")
        if self.hasher.check_needs_rehash(user.password_hash):
            self.users.set_password_hash(user.id, self.hasher.hash(password))
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

    def login(self, email: str, password: str) -> str:
        return self.issue_token(self.authenticate(email, password))
