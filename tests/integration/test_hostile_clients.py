"""Hostile clients at the app layer: bounded bodies, JSON depth and query parameters, throttled
logins, safe request ids, and a JSON answer for every error (404, 405 with Allow, 413)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_gateway_api import Stack, error_code
from video2mp3.auth.throttle import FREE
from video2mp3.web import MAX_BODY_BYTES, MAX_JSON_DEPTH


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    stack.headers = stack.user()  # type: ignore[attr-defined]
    yield stack
    stack.stop()


def signup(stack: Stack, body: bytes, **headers: str) -> object:
    return stack.client.post(
        "/api/v1/users", data=body, headers={"Content-Type": "application/json", **headers}
    )


def nested(depth: int) -> bytes:
    """A sign-up body with a list nested ``depth`` deep beside the credentials."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"email": "deep@example.com", "password": "pw-123456", "x": ' + inner + b"}"


def test_a_json_body_over_the_limit_is_413_json_before_it_is_read(gateway: Stack) -> None:
    big = b'{"email": "big@example.com", "password": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = signup(gateway, big)
    assert (response.status_code, error_code(response)) == (413, "too_large")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 30_000])
def test_deeply_nested_json_is_422_not_500(gateway: Stack, depth: int) -> None:
    response = signup(gateway, nested(depth))
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert "nested" in response.get_json()["error"]["message"]


def test_json_nested_100000_deep_is_refused_by_its_size(gateway: Stack) -> None:
    response = signup(gateway, nested(100_000))  # 200 KB of brackets
    assert (response.status_code, error_code(response)) == (413, "too_large")


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/webhooks", "/api/v1/jobs"])
def test_every_json_route_bounds_size_and_depth(gateway: Stack, path: str) -> None:
    # The upload route streams its multipart body past the limit; a JSON body (a cache lookup
    # by SHA-256) gets the same bounds as everywhere else.
    headers = {**gateway.headers, "Content-Type": "application/json"}  # type: ignore[attr-defined]
    big = gateway.client.post(
        path, data=b'{"x": "' + b"x" * MAX_BODY_BYTES + b'"}', headers=headers
    )
    assert (big.status_code, error_code(big)) == (413, "too_large")
    deep = gateway.client.post(path, data=b"[" * 30_000 + b"]" * 30_000, headers=headers)
    assert (deep.status_code, error_code(deep)) == (422, "invalid_request")


def test_uploads_keep_their_own_limit(gateway: Stack) -> None:
    response = gateway.upload(gateway.headers, data=b"v" * (4 * MAX_BODY_BYTES))
    assert response.status_code == 202, response.get_json()


def test_json_within_the_depth_bound_is_accepted(gateway: Stack) -> None:
    assert signup(gateway, nested(MAX_JSON_DEPTH - 2)).status_code == 201


@pytest.mark.parametrize(
    "query",
    [
        "offset=9223372036854775808",
        "offset=1000000001",
        "limit=\u0661\u0662",  # Arabic-Indic digits: int() takes them, we do not
        "limit=1_0",
        "limit=%2010",
        "offset=-1",
        "limit=0",
        "limit=101",
    ],
)
def test_query_parameters_are_bounded(gateway: Stack, query: str) -> None:
    response = gateway.client.get(f"/api/v1/jobs?{query}", headers=gateway.headers)
    assert (response.status_code, error_code(response)) == (422, "invalid_request")


def test_a_long_file_id_is_refused(gateway: Stack) -> None:
    response = gateway.client.get(f"/download?fid={'a' * 65}", headers=gateway.headers)
    assert (response.status_code, error_code(response)) == (422, "invalid_request")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123.X:y_z", True),
        ("<script>alert(1)</script>", False),
        ("a" * 65, False),
        ("a\u2028b", False),
    ],
)
def test_request_ids_are_echoed_only_when_safe(gateway: Stack, given: str, kept: bool) -> None:
    response = gateway.client.get("/healthz", headers={"X-Request-ID": given})
    echoed = response.headers["X-Request-ID"]
    assert (echoed == given) is kept
    if not kept:
        assert len(echoed) == 32
        assert echoed.isalnum()


def test_405_says_what_is_allowed_and_trace_is_refused(gateway: Stack) -> None:
    for method in ("PUT", "TRACE"):
        response = gateway.client.open("/api/v1/jobs", method=method, headers=gateway.headers)
        assert (response.status_code, error_code(response)) == (405, "method_not_allowed")
        assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    response = gateway.client.get("/nowhere")
    assert (response.status_code, error_code(response)) == (404, "not_found")


def test_failed_logins_are_throttled_with_a_growing_retry_after(gateway: Stack) -> None:
    codes = [
        gateway.client.post("/login", auth=("ann@example.com", "wrong")).status_code
        for _ in range(FREE["account"])
    ]
    assert codes == [401] * FREE["account"]
    refused = gateway.client.post("/login", auth=("ann@example.com", "pw-123456"))
    assert (refused.status_code, error_code(refused)) == (429, "too_many_requests")
    assert refused.headers["Retry-After"] == "1"
    # Another client address logging in to another account is not affected.
    gateway.client.post("/api/v1/users", json={"email": "bob@example.com", "password": "pw-123456"})
    other = gateway.client.post(
        "/login", auth=("bob@example.com", "pw-123456"), environ_base={"REMOTE_ADDR": "192.0.2.9"}
    )
    assert other.status_code == 200
