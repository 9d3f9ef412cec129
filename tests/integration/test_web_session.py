"""What the page relies on, in one process: signed download links, the cookie session with its
CSRF token, and the live event stream, on the real Flask app over embedded adapters."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from tests.integration.test_gateway_api import MP3, Stack
from tests.support import wait_for
from video2mp3 import signing
from video2mp3.domain.events import ConversionProgress, Event
from video2mp3.domain.options import ConversionOptions

CREDENTIALS = {"email": "bob@example.com", "password": "pw-123456"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    stack.headers = stack.user()  # type: ignore[attr-defined]
    yield stack
    stack.stop()


def log_in(stack: Stack) -> str:
    """Sign up and log in as the page does; the CSRF token (the cookie stays in the client)."""
    assert stack.client.post("/api/v1/users", json=CREDENTIALS).status_code == 201
    response = stack.client.post("/session", json=CREDENTIALS)
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http here: a Secure cookie would never come back
    return str(response.get_json()["csrf"])


def test_a_signed_link_opens_one_mp3_with_no_header(stack: Stack, monkeypatch: Any) -> None:
    job_id = stack.upload(stack.headers).get_json()["id"]
    assert stack.job(job_id)["download_url"] is None  # nothing to link to yet
    stack.finish(job_id)
    link = stack.job(job_id)["download_url"]
    assert link.startswith("http://localhost/mp3/")
    path = link.removeprefix("http://localhost")
    whole = stack.client.get(path)
    assert (whole.status_code, whole.data, whole.mimetype) == (200, MP3, "audio/mpeg")
    assert 'filename="My Clip.mp3"' in whole.headers["Content-Disposition"]
    part = stack.client.get(path, headers={"Range": "bytes=100-199"})
    assert (part.status_code, part.data) == (206, MP3[100:200])
    assert stack.client.get(path[:-3] + "abc").status_code == 404  # tampered

    later = time.time() + stack.settings.link_ttl_seconds + 1
    monkeypatch.setattr(signing.time, "time", lambda: later)
    expired = stack.client.get(path)
    assert (expired.status_code, expired.get_json()["error"]["code"]) == (403, "link_expired")
    monkeypatch.undo()

    assert stack.client.delete(f"/api/v1/jobs/{job_id}", headers=stack.headers).status_code == 204
    assert stack.client.get(path).status_code == 404  # the job is gone, so is its link


def test_the_link_lifetime_is_a_setting(tmp_path: Path) -> None:
    stack = Stack(tmp_path, link_ttl_seconds=120)
    try:
        headers = stack.user()
        job_id = stack.upload(headers).get_json()["id"]
        stack.headers = headers  # type: ignore[attr-defined]
        stack.finish(job_id)
        token = stack.job(job_id)["download_url"].rsplit("/", 1)[1]
        expires = int(token.split(".")[2])
        assert 110 <= expires - time.time() <= 120
    finally:
        stack.stop()


def test_the_session_cookie_needs_its_csrf_token_to_change_anything(stack: Stack) -> None:
    csrf = log_in(stack)
    assert stack.client.get("/session").get_json() == {"email": "bob@example.com", "csrf": csrf}
    assert stack.client.get("/api/v1/jobs").get_json()["total"] == 0  # reading needs no token

    def upload(**headers: str) -> Any:
        data = {"file": (io.BytesIO(b"v" * 99), "a.mp4")}
        return stack.client.post("/api/v1/jobs", headers=headers, data=data)

    refused = upload()
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "csrf")
    job = upload(**{"X-CSRF-Token": csrf})
    assert job.status_code == 202
    job_id = job.get_json()["id"]
    assert stack.client.delete(f"/api/v1/jobs/{job_id}").status_code == 403
    assert stack.client.get(f"/api/v1/jobs/{job_id}").status_code == 200
    # Another user's token is not this session's.
    other = stack.accounts.login("ann@example.com", "pw-123456", "192.0.2.1")
    stolen = stack.client.delete(
        f"/api/v1/jobs/{job_id}", headers={"X-CSRF-Token": signing_csrf(stack, other)}
    )
    assert stolen.status_code == 403
    assert (
        stack.client.delete(f"/api/v1/jobs/{job_id}", headers={"X-CSRF-Token": csrf}).status_code
        == 204
    )
    assert stack.client.delete("/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert stack.client.get("/api/v1/jobs").status_code == 401
    assert stack.client.get("/session").get_json() == {"email": None}


def signing_csrf(stack: Stack, session: str) -> str:
    ring = signing.SecretRing.load(Path(str(stack.settings.link_key_dir)))
    return ring.sign("csrf", session)


def test_the_cookie_is_secure_over_https(tmp_path: Path) -> None:
    stack = Stack(tmp_path, public_url="https://v2m.example")
    try:
        assert stack.client.post("/api/v1/users", json=CREDENTIALS).status_code == 201
        cookie = stack.client.post("/session", json=CREDENTIALS).headers["Set-Cookie"]
        assert "Secure" in cookie
    finally:
        stack.stop()


def test_a_bad_login_from_the_page_says_why(stack: Stack) -> None:
    wrong = stack.client.post("/session", json={**CREDENTIALS, "password": "nope-nope"})
    assert wrong.status_code == 401
    assert stack.client.post("/session", data="email=a").status_code == 422
    assert "Set-Cookie" not in wrong.headers


def test_the_event_stream_brings_the_callers_changes(stack: Stack) -> None:
    mine = stack.upload(stack.headers).get_json()["id"]
    feed = stack.app.extensions["video2mp3.feed"]
    response = stack.client.get("/api/v1/events", headers=stack.headers, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    assert next(chunks) == b"retry: 1000\n\n"
    assert feed.open_streams == 1

    bob = stack.user("bob@example.com")
    theirs = stack.upload(bob).get_json()["id"]
    stack.bus.publish(Event(theirs, ConversionProgress(0.3)))  # not for this stream...
    wait_for(lambda: stack.job(theirs, bob)["progress"] == 0.3, 5, "bob's progress")
    stack.bus.publish(Event(mine, ConversionProgress(0.42)))
    seen = []  # the job as queued (changed just before the stream began), then processing
    while not seen or '"progress":0.42' not in seen[-1]:
        seen.append(next(chunks).decode())
    assert all(event.startswith("event: job\ndata: ") for event in seen)
    assert all(f'"id":"{mine}"' in event for event in seen)  # bob's came first, and is not here
    assert '"status":"processing"' in seen[-1]
    assert '"download_url":null' in seen[-1]
    response.close()
    assert feed.open_streams == 0


def test_live_pages_are_capped_per_process(tmp_path: Path) -> None:
    stack = Stack(tmp_path, live_pages=1)
    try:
        headers = stack.user()
        first = stack.client.get("/api/v1/events", headers=headers, buffered=False)
        assert first.status_code == 200
        second = stack.client.get("/api/v1/events", headers=headers, buffered=False)
        assert (second.status_code, second.get_json()["error"]["code"]) == (503, "busy")
        first.close()
        third = stack.client.get("/api/v1/events", headers=headers, buffered=False)
        assert third.status_code == 200
        third.close()
    finally:
        stack.stop()


def test_live_pages_are_capped_per_user(tmp_path: Path) -> None:
    stack = Stack(tmp_path, live_pages=4, live_pages_per_user=2)

    def events(headers: dict[str, str]) -> TestResponse:
        return stack.client.get("/api/v1/events", headers=headers, buffered=False)

    try:
        # Streams are closed last opened first: each holds a request context of this thread.
        ann, bob = stack.user(), stack.user("bob@example.com")
        first, second = events(ann), events(ann)
        assert (first.status_code, second.status_code) == (200, 200)
        third = events(ann)
        assert (third.status_code, third.get_json()["error"]["code"]) == (503, "busy")
        theirs = events(bob)
        assert theirs.status_code == 200  # the process has room for others
        theirs.close()
        second.close()  # the client goes: its slot is free
        again = events(ann)
        assert again.status_code == 200
        again.close()
        first.close()
    finally:
        stack.stop()


def test_the_origin_check_compares_hosts(stack: Stack) -> None:
    """Behind a proxy that ends TLS the page's origin is https and this server sees http: the
    same host passes, another host does not."""
    assert stack.client.post("/api/v1/users", json=CREDENTIALS).status_code == 201
    proxied = stack.client.post(
        "/session", json=CREDENTIALS, headers={"Origin": "https://localhost"}
    )
    assert proxied.status_code == 200
    elsewhere = {"Origin": "https://localhost.evil.example"}
    assert stack.client.post("/session", json=CREDENTIALS, headers=elsewhere).status_code == 403


def test_the_page_offers_sign_up_only_when_it_is_open(tmp_path: Path) -> None:
    open_page = Stack(tmp_path / "open")
    closed_page = Stack(tmp_path / "closed", signup_enabled=False)
    try:
        assert ">Sign up</button>" in open_page.client.get("/").text
        page = closed_page.client.get("/").text
        assert ">Log in</button>" in page
        assert "Sign up" not in page
        # Every conversion option the API takes has its control, built from describe().
        for name in ConversionOptions.model_fields:
            assert f'name="{name}"' in page
    finally:
        open_page.stop()
        closed_page.stop()
