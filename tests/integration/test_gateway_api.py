"""The gateway's HTTP API end to end in one process: auth, uploads, jobs, downloads, errors.

Embedded adapters (SQLite, local blobs, in-process bus and identity) behind the real Flask app;
converter events are published on the bus as a converter would.
"""

from __future__ import annotations

import io
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from werkzeug.test import TestResponse

from tests.support import wait_for
from video2mp3 import bootstrap, signing
from video2mp3.adapters.bus.inprocess import InProcessBus
from video2mp3.adapters.identity.inprocess import InProcessIdentity
from video2mp3.auth.keys import generate
from video2mp3.domain.events import ConversionFailed, ConversionSucceeded, Event, Owner
from video2mp3.gateway.http import SESSION_COOKIE
from video2mp3.health import Health, listen
from video2mp3.settings import load

MP3 = bytes(range(256)) * 40  # stands in for an MP3: the gateway only streams bytes


class ClosingClient(FlaskClient):
    """Reads each response whole and closes it, as a WSGI server does (a streamed MP3 keeps its
    blob open until then); ``buffered=False`` still streams, for the event stream."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> TestResponse:
        return super().open(*args, buffered=buffered, **kwargs)


class Stack:
    def __init__(self, root: Path, **overrides: Any) -> None:
        generate(root / "keys")
        signing.generate(root / "link-keys")
        self.settings = load(
            auth_db_url=f"sqlite:///{root}/auth.db",
            jobs_db_url=f"sqlite:///{root}/jobs.db",
            blob_dir=root / "blobs",
            jwt_key_dir=root / "keys",
            link_key_dir=root / "link-keys",
            mongodb_url=None,
            **overrides,
        )
        bootstrap.create_schemas(self.settings, "auth", "gateway")
        self.bus = InProcessBus()
        self.blobs = bootstrap.blob_store(self.settings, "test")
        self.accounts = bootstrap.accounts(self.settings)
        jobs = bootstrap.jobs(self.settings)
        worker, background = bootstrap.gateway_worker(self.settings, jobs, self.blobs, self.bus)
        self.background = background
        self.jobs = jobs
        self.app: Flask = bootstrap.gateway_app(
            self.settings,
            InProcessIdentity(self.accounts),
            jobs,
            self.blobs,
            on_queued=background.wake_relay,
        )
        self.app.test_client_class = ClosingClient
        self.client: FlaskClient = self.app.test_client()
        self.stopping = threading.Event()
        self.loops = [
            threading.Thread(target=loop, args=(self.stopping,)) for loop in worker.loops.values()
        ]
        for thread in self.loops:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.loops:
            thread.join(10)
            assert not thread.is_alive()

    def user(self, email: str = "ann@example.com") -> dict[str, str]:
        """Sign up and log in; the Authorization header for that user."""
        assert (
            self.client.post(
                "/api/v1/users", json={"email": email, "password": "pw-123456"}
            ).status_code
            == 201
        )
        response = self.client.post("/login", auth=(email, "pw-123456"))
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        return {"Authorization": f"Bearer {response.text}"}

    def upload(
        self,
        headers: dict[str, str],
        data: bytes = b"video" * 100,
        path: str = "/api/v1/jobs",
        **form: Any,
    ) -> Any:
        return self.client.post(
            path, headers=headers, data={**form, "file": (io.BytesIO(data), "My Clip.mp4")}
        )

    def finish(self, job_id: str, owner: int = 1, content: bytes = MP3) -> str:
        """Store an MP3 and report success as a converter would; return its file id."""
        mp3 = self.blobs.put(iter([content]), filename="x.mp3", content_type="audio/mpeg")
        self.bus.publish(
            Event(job_id, ConversionSucceeded(mp3.id, mp3.size, 3.0, Owner(owner, "a@x"), "a.mp4"))
        )
        wait_for(lambda: self.job(job_id)["status"] == "succeeded", 5, "the job to succeed")
        return mp3.id

    def job(self, job_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        headers = headers or self.headers
        return self.client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    stack.headers = stack.user()  # type: ignore[attr-defined]
    yield stack
    stack.stop()


def error_code(response: Any) -> str:
    body = response.get_json()
    assert set(body["error"]) == {"code", "message"}
    return str(body["error"]["code"])


def test_signup_rules(stack: Stack) -> None:
    post = stack.client.post
    assert (
        error_code(
            post("/api/v1/users", json={"email": "ann@example.com", "password": "pw-123456"})
        )
        == "conflict"
    )
    assert post("/api/v1/users", json={"email": "nope", "password": "pw-123456"}).status_code == 422
    assert post("/api/v1/users", data="x").status_code == 422


def test_signup_can_be_turned_off(tmp_path: Path) -> None:
    stack = Stack(tmp_path, signup_enabled=False)
    response = stack.client.post(
        "/api/v1/users", json={"email": "a@example.com", "password": "pw-123456"}
    )
    assert response.status_code == 403
    stack.stop()


def test_login_failures(stack: Stack) -> None:
    assert stack.client.post("/login", auth=("ann@example.com", "wrong")).status_code == 401
    assert error_code(stack.client.post("/login")) == "unauthorized"


def test_upload_queues_a_job_and_publishes_the_request(stack: Stack) -> None:
    response = stack.upload(stack.headers, bitrate="128")
    assert response.status_code == 202
    job = response.get_json()
    assert (job["status"], job["progress"], job["error"], job["mp3_fid"]) == (
        "queued",
        0.0,
        None,
        None,
    )
    assert job["filename"] == "My Clip.mp4"
    assert job["bitrate_kbps"] == 128
    assert job["options"] == {"bitrate": 128}
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    wait_for(lambda: stack.bus.depth("converter") == 1, 5, "the relayed request")
    assert stack.app.extensions["video2mp3.gateway"].jobs.outbox_depth() == 0


def test_options_come_from_the_query_and_the_fields_and_are_shown_back(stack: Stack) -> None:
    response = stack.client.post(
        "/api/v1/jobs?start=0:01&title=Song",
        headers=stack.headers,
        data={"channels": "1", "file": (io.BytesIO(b"video"), "a.mp4")},
    )
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["options"] == {"channels": 1, "start": 1.0, "title": "Song"}
    job_id = response.get_json()["id"]
    assert stack.client.get(f"/api/v1/jobs/{job_id}", headers=stack.headers).get_json()[
        "options"
    ] == {"channels": 1, "start": 1.0, "title": "Song"}


def test_a_bad_option_names_the_field(stack: Stack) -> None:
    response = stack.upload(stack.headers, end="soon", sample_rate="12345")
    message = response.get_json()["error"]["message"]
    assert response.status_code == 422
    assert "end:" in message
    assert "sample_rate:" in message


def test_seed_compatible_upload(stack: Stack) -> None:
    response = stack.upload(stack.headers, path="/upload")
    assert response.status_code == 202
    assert response.get_json()["id"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"bitrate": "1000"}, 422, "invalid_request"),
        ({"bitrate": "128", "quality": "2"}, 422, "invalid_request"),
        ({"loudness": "-14"}, 422, "invalid_request"),
        ({"data": b""}, 422, "invalid_request"),
    ],
)
def test_bad_uploads(stack: Stack, kwargs: dict[str, Any], status: int, code: str) -> None:
    data = kwargs.pop("data", b"video")
    response = stack.upload(stack.headers, data=data, **kwargs)
    assert (response.status_code, error_code(response)) == (status, code)
    assert [p for p in stack.blobs.root.iterdir() if p.is_file()] == []  # type: ignore[attr-defined]


def test_upload_without_a_file_or_multipart(stack: Stack) -> None:
    assert (
        stack.client.post("/api/v1/jobs", headers=stack.headers, data={"x": "1"}).status_code == 422
    )
    assert stack.client.post("/api/v1/jobs", headers=stack.headers, json={}).status_code == 422


def test_upload_over_the_limit_is_413_and_stores_nothing(tmp_path: Path) -> None:
    stack = Stack(tmp_path, max_upload_bytes=1000)
    headers = stack.user()
    response = stack.upload(headers, data=b"v" * 5000)
    assert (response.status_code, error_code(response)) == (413, "too_large")
    assert [p for p in stack.blobs.root.iterdir() if p.is_file()] == []  # type: ignore[attr-defined]
    assert stack.client.get("/api/v1/jobs", headers=headers).get_json()["total"] == 0
    stack.stop()


def test_tokens_are_required(stack: Stack) -> None:
    assert stack.client.get("/download").status_code == 401  # before the missing ?fid= (422)
    assert stack.client.get("/api/v1/jobs").status_code == 401
    assert (
        stack.client.get("/api/v1/jobs", headers={"Authorization": "Bearer x.y.z"}).status_code
        == 401
    )
    assert stack.upload({}).status_code == 401


@pytest.mark.parametrize("token", ["x.y.z", "not-a-jwt", "eyJhbGciOiJub25lIn0.e30."])
def test_a_refused_token_gets_one_fixed_message(stack: Stack, token: str) -> None:
    answers = [stack.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})]
    stack.client.set_cookie(SESSION_COOKIE, token)
    answers.append(stack.client.get("/api/v1/jobs"))
    for response in answers:
        assert response.status_code == 401
        assert response.get_json()["error"] == {
            "code": "unauthorized",
            "message": "the token is missing, expired or invalid; log in again",
        }


def test_list_is_paginated_newest_first(stack: Stack) -> None:
    ids = [stack.upload(stack.headers).get_json()["id"] for _ in range(3)]
    page = stack.client.get("/api/v1/jobs?limit=2", headers=stack.headers).get_json()
    assert page["total"] == 3
    assert [j["id"] for j in page["items"]] == ids[::-1][:2]
    rest = stack.client.get("/api/v1/jobs?limit=2&offset=2", headers=stack.headers).get_json()
    assert [j["id"] for j in rest["items"]] == [ids[0]]
    for query in ("limit=0", "limit=101", "offset=-1", f"offset={2**31}", "limit=many"):
        assert stack.client.get(f"/api/v1/jobs?{query}", headers=stack.headers).status_code == 422


def test_download_streams_with_length_etag_and_range(stack: Stack) -> None:
    job_id = stack.upload(stack.headers).get_json()["id"]
    fid = stack.finish(job_id)
    job = stack.job(job_id)
    assert (job["status"], job["progress"], job["mp3_fid"]) == ("succeeded", 1.0, fid)
    for url in (f"/api/v1/jobs/{job_id}/mp3", f"/download?fid={fid}"):
        with stack.client.get(url, headers=stack.headers) as response:
            assert response.status_code == 200
            assert response.data == MP3
            assert response.mimetype == "audio/mpeg"
            assert response.content_length == len(MP3)
            assert 'filename="My Clip.mp3"' in response.headers["Content-Disposition"]
            etag = response.headers["ETag"]
        range_ = {**stack.headers, "Range": "bytes=100-199"}
        with stack.client.get(url, headers=range_) as partial:
            assert partial.status_code == 206
            assert partial.data == MP3[100:200]
            assert partial.headers["Content-Range"] == f"bytes 100-199/{len(MP3)}"
        if_none_match = {**stack.headers, "If-None-Match": etag}
        with stack.client.get(url, headers=if_none_match) as cached:
            assert cached.status_code == 304


def test_failed_jobs_carry_the_reason(stack: Stack) -> None:
    job_id = stack.upload(stack.headers).get_json()["id"]
    stack.bus.publish(
        Event(job_id, ConversionFailed("no_audio", "no audio", False, Owner(1, "a@x"), "a"))
    )
    wait_for(lambda: stack.job(job_id)["status"] == "failed", 5, "the failure")
    assert stack.job(job_id)["error"] == {"code": "no_audio", "message": "no audio"}
    assert stack.client.get(f"/api/v1/jobs/{job_id}/mp3", headers=stack.headers).status_code == 404


def test_only_the_owner_sees_a_job_and_its_mp3(stack: Stack) -> None:
    job_id = stack.upload(stack.headers).get_json()["id"]
    fid = stack.finish(job_id)
    mallory = stack.user("mallory@example.com")
    for url in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/mp3", f"/download?fid={fid}"):
        assert stack.client.get(url, headers=mallory).status_code == 404
    assert stack.client.delete(f"/api/v1/jobs/{job_id}", headers=mallory).status_code == 404
    assert stack.client.get("/api/v1/jobs", headers=mallory).get_json()["total"] == 0


def test_delete_removes_the_job_and_both_blobs(tmp_path: Path) -> None:
    stack = Stack(tmp_path, keep_videos_for="1h")
    stack.headers = stack.user()  # type: ignore[attr-defined]
    job_id = stack.upload(stack.headers).get_json()["id"]
    stack.finish(job_id)
    assert len([p for p in stack.blobs.root.iterdir() if p.is_file()]) == 4  # type: ignore[attr-defined]
    assert stack.client.delete(f"/api/v1/jobs/{job_id}", headers=stack.headers).status_code == 204
    assert stack.client.get(f"/api/v1/jobs/{job_id}", headers=stack.headers).status_code == 404
    assert [p for p in stack.blobs.root.iterdir() if p.is_file()] == []  # type: ignore[attr-defined]
    stack.stop()


def test_an_mp3_for_a_deleted_job_is_not_kept(stack: Stack) -> None:
    job_id = stack.upload(stack.headers).get_json()["id"]
    stack.client.delete(f"/api/v1/jobs/{job_id}", headers=stack.headers)
    mp3 = stack.blobs.put(iter([MP3]), filename="x.mp3", content_type="audio/mpeg")
    stack.bus.publish(Event(job_id, ConversionSucceeded(mp3.id, 1, 1.0, Owner(1, "a@x"), "a")))
    wait_for(lambda: not (stack.blobs.root / mp3.id).exists(), 5, "the orphan MP3 to go")  # type: ignore[attr-defined]


def test_probes_and_metrics_are_on_the_admin_listener_only(stack: Stack) -> None:
    assert stack.client.get("/healthz").get_json() == {"status": "ok"}
    for path in ("/readyz", "/metrics"):
        assert stack.client.get(path).status_code == 404, path
    health: Health = stack.app.extensions["video2mp3.health"]
    server = health.serve(listen(0, "127.0.0.1"))
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        health.check_dependencies()
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["dependencies"] == {"database": "ok", "blobs": "ok"}
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert 'video2mp3_dependency_up{dependency="blobs"} 1.0' in metrics
        assert "http_requests_in_flight" in metrics
    finally:
        health.close()
        server.shutdown()
        server.server_close()


def test_a_dependency_down_is_reported_but_leaves_the_pod_ready(stack: Stack) -> None:
    health: Health = stack.app.extensions["video2mp3.health"]
    shutil.rmtree(stack.blobs.root)  # type: ignore[attr-defined]
    health.check_dependencies()
    assert health.readiness() == {}
    states = health.dependency_states()
    assert states["blobs"] != "ok"
    assert states["database"] == "ok"
    assert REGISTRY.get_sample_value("video2mp3_dependency_up", {"dependency": "blobs"}) == 0


def test_errors_are_json_everywhere(stack: Stack) -> None:
    response = stack.client.get("/no/such/page")
    assert (response.status_code, error_code(response)) == (404, "not_found")
    response = stack.client.put("/api/v1/jobs", headers=stack.headers)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))  # RFC 9110


def test_openapi_describes_every_route(stack: Stack) -> None:
    spec = stack.client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for rule in stack.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in spec["paths"], path
        methods = rule.methods - {"HEAD", "OPTIONS"}  # type: ignore[operator]
        assert {m.lower() for m in methods} <= set(spec["paths"][path]), path


def finished_job(stack: Stack) -> Callable[..., str]:
    """A finished job's ``download_url`` as a request with the given headers sees it."""
    auth = stack.headers = stack.user()  # type: ignore[attr-defined]
    job_id = stack.upload(auth).get_json()["id"]
    stack.finish(job_id)

    def link(**headers: str) -> str:
        response = stack.client.get(f"/api/v1/jobs/{job_id}", headers={**auth, **headers})
        found: str = response.get_json()["download_url"]
        return found

    return link


FORGED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}


@pytest.mark.parametrize("hops", [0, 1])
def test_download_links_use_the_public_url_whatever_the_request_says(
    tmp_path: Path, hops: int
) -> None:
    stack = Stack(tmp_path, public_url="https://v2m.example/", proxy_hops=hops)
    try:
        link = finished_job(stack)
        assert link(**FORGED).startswith("https://v2m.example/mp3/")
        assert link().startswith("https://v2m.example/mp3/")
    finally:
        stack.stop()


def test_without_a_public_url_links_follow_the_host_and_only_trusted_proxies(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path / "direct")
    try:
        link = finished_job(stack)
        assert link(**FORGED).startswith("http://evil.example/mp3/")  # its caller's own answer
        assert link(Host="v2m.lan:8080", **{"X-Forwarded-Host": "evil.example"}).startswith(
            "http://v2m.lan:8080/mp3/"
        )
    finally:
        stack.stop()
    stack = Stack(tmp_path / "proxied", proxy_hops=1)
    try:
        forwarded = {"X-Forwarded-Host": "v2m.example", "X-Forwarded-Proto": "https"}
        assert finished_job(stack)(**forwarded).startswith("https://v2m.example/mp3/")
    finally:
        stack.stop()
