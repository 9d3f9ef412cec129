"""Identity port: what the gateway needs from the auth service."""

from __future__ import annotations

from typing import Any, Protocol


class Identity(Protocol):
    def login(self, email: str, password: str, client: str) -> str:
        """A JWT for these credentials, tried from the address ``client``.

        Raises ``Unauthorized``, ``TooManyRequests`` (with ``retry_after``) while the account or
        the address is throttled, or ``Unavailable``.
        """
        ...

    def register(self, email: str, password: str) -> dict[str, Any]:
        """Create an account, returning ``{"id", "email"}``.

        Raises ``InvalidRequest``, ``Conflict``, ``Forbidden`` (sign-up disabled), ``Unavailable``.
        """
        ...

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set that verifies tokens. Raises ``Unavailable``."""
        ...
