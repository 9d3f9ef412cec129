"""Identity port: what the gateway needs from the auth service."""

from __future__ import annotations

from typing import Any, Protocol


class Identity(Protocol):
    def login(self, email: str, password: str) -> str:
        """A JWT for these credentials. Raises ``Unauthorized``, or ``Unavailable``."""
        ...

    def register(self, email: str, password: str) -> dict[str, Any]:
        """Create an account, returning ``{"id", "email"}``.

        Raises ``InvalidRequest``, ``Conflict``, ``Forbidden`` (sign-up disabled), ``Unavailable``.
        """
        ...

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set that verifies tokens. Raises ``Unavailable``."""
        ...
