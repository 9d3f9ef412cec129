"""``InProcessIdentity``: the auth use cases called directly, for ``video2mp3 dev``."""

from __future__ import annotations

from typing import Any

from video2mp3.auth.accounts import Accounts


class InProcessIdentity:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    def login(self, email: str, password: str, client: str) -> str:
        return self._accounts.login(email, password, client)

    def register(self, email: str, password: str) -> dict[str, Any]:
        user = self._accounts.register(email, password)
        return {"id": user.id, "email": user.email}

    def jwks(self) -> dict[str, Any]:
        return self._accounts.keys.jwks()
