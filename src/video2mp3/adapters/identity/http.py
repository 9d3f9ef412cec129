"""``HTTPIdentity``: the auth service reached over HTTP, its JSON errors turned back into ours."""

from __future__ import annotations

from typing import Any

import requests

from video2mp3.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Video2mp3Error,
)

TIMEOUT = 10
_BY_STATUS: dict[int, type[Video2mp3Error]] = {
    401: Unauthorized,
    403: Forbidden,
    409: Conflict,
    422: InvalidRequest,
    429: TooManyRequests,
}


class HTTPIdentity:
    def __init__(self, auth_url: str) -> None:
        self._url = auth_url.rstrip("/")
        self._http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._http.request(method, self._url + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise Unavailable(f"auth service: {exc}") from exc
        if response.ok:
            return response
        error_class = _BY_STATUS.get(response.status_code, Unavailable)
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"auth service answered {response.status_code}"
        retry_after = response.headers.get("Retry-After", "")
        raise error_class(message, retry_after=int(retry_after) if retry_after.isdigit() else None)

    def login(self, email: str, password: str, client: str) -> str:
        # Auth sees the gateway's address; it throttles by the client's, which only the gateway
        # can reach it to tell (see the README).
        headers = {"X-Forwarded-For": client}
        return self._call("POST", "/login", auth=(email, password), headers=headers).text

    def register(self, email: str, password: str) -> dict[str, Any]:
        body = {"email": email, "password": password}
        result: dict[str, Any] = self._call("POST", "/users", json=body).json()
        return result

    def jwks(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/.well-known/jwks.json").json()
        return result
