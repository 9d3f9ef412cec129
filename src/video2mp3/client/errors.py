"""The client's errors: every failure a command reports, with a stable ``code``."""

from __future__ import annotations


class ClientError(Exception):
    """A request failed: ``code`` is stable (the server's, or one of the client's own).

    ``status`` is the HTTP status when the server answered; ``retry_after`` the seconds it
    asked to wait when it answered "not now" (429, 503), else ``None``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after


class Cancelled(ClientError):
    def __init__(self) -> None:
        super().__init__("cancelled", "interrupted")
