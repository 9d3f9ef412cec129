"""Users port: auth's accounts."""

from __future__ import annotations

from typing import Protocol

from video2mp3.domain.users import User


class UserRepository(Protocol):
    def add(self, email: str, password_hash: str) -> User:
        """Insert a user and return it; ``Conflict`` if the email is taken."""
        ...

    def by_email(self, email: str) -> User | None:
        """The user with ``email``, if any."""
        ...

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Replace a user's hash (after a rehash with newer parameters). Idempotent."""
        ...

    def ping(self) -> None:
        """Return if the database answers, else raise ``Unavailable``."""
        ...
