"""Bounded storage through the gateway's HTTP API: the conversion cache, retention, quotas, the
orphan collector and MP3 caching headers (embedded adapters, the real Flask app and loops)."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mutagen.id3 import ID3
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_gateway_api import MP3, Stack, error_code
from tests.support import wait_for
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.converter.facts import Chapter
from video2mp3.converter.tags import Tags, write_tags
from video2mp3.domain.events import JobFinished
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import QuotaExceeded
from video2mp3.gateway.tokens import Principal

VIDEO = b"a video" * 1000
SHA = hashlib.sha256(VIDEO).hexdigest()


Make = Callable[..., Stack]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    """Stacks with the given settings and a signed-in user; stopped after the test, whatever
    happens (their loops would keep the test process alive)."""
    made: list[Stack] = []

    def build(**settings: Any) -> Stack:
        made.append(Stack(tmp_path / str(len(made)), **settings))
        made[-1].headers = made[-1].user()  # type: ignore[attr-defined]
        return made[-1]

    yield build
    for stack in made:
        stack.stop()


@pytest.fixture
def stack(make: Make) -> Stack:
    return make()


def files(stack: Stack) -> set[str]:
    assert isinstance(stack.blobs, LocalBlobStore)
    return {p.name for p in stack.blobs.root.iterdir() if p.is_file()}


def converted(stack: Stack, headers: dict[str, str], **options: str) -> dict[str, Any]:
    """Upload VIDEO and finish its job as a converter would; the finished job."""
    job_id = stack.upload(headers, VIDEO, **options).get_json()["id"]
    stack.finish(job_id)
    return stack.job(job_id, headers)


def ask_cache(stack: Stack, headers: dict[str, str], **body: Any) -> Any:
    payload = {"sha256": SHA, "size": len(VIDEO), "filename": "again.mp4", **body}
    return stack.client.post("/api/v1/jobs", headers=headers, json=payload)


def test_the_same_video_with_the_same_options_is_finished_at_once(stack: Stack) -> None:
    first = converted(stack, stack.headers, bitrate="128")
    wait_for(
        lambda: files(stack) == {first["mp3_fid"], first["mp3_fid"] + ".json"}, 5, "the video to go"
    )
    again = stack.upload(stack.headers, VIDEO, bitrate="128")
    assert again.status_code == 201
    job = again.get_json()
    assert (job["status"], job["progress"], job["mp3_fid"]) == ("succeeded", 1.0, first["mp3_fid"])
    assert job["id"] != first["id"]
    stack.background.sweep()  # the video received is deleted off the request path
    assert files(stack) == {first["mp3_fid"], first["mp3_fid"] + ".json"}
    download = stack.client.get(f"/api/v1/jobs/{job['id']}/mp3", headers=stack.headers)
    assert download.data == MP3
    told = wait_for(lambda: stack.bus.depth("notifier") == 2, 5, "a job.finished for each job")
    assert told
    other = stack.upload(stack.headers, VIDEO, bitrate="192")  # other options: converted again
    assert (other.status_code, other.get_json()["status"]) == (202, "queued")


def test_the_cache_can_be_asked_without_uploading(stack: Stack) -> None:
    response = ask_cache(stack, stack.headers)
    assert (response.status_code, error_code(response)) == (409, "upload_needed")
    first = converted(stack, stack.headers)
    hit = ask_cache(stack, stack.headers)
    assert hit.status_code == 201
    assert hit.get_json()["mp3_fid"] == first["mp3_fid"]
    assert hit.get_json()["filename"] == "again.mp4"
    assert ask_cache(stack, stack.headers, options={"bitrate": 64}).status_code == 409
    for bad in ({"sha256": "abc"}, {"size": -1}, {"size": True}, {"options": [1]}):
        response = ask_cache(stack, stack.headers, **bad)
        assert (response.status_code, error_code(response)) == (422, "invalid_request"), bad


def test_other_users_never_learn_of_a_conversion(stack: Stack) -> None:
    converted(stack, stack.headers)
    mallory = stack.user("mallory@example.com")
    response = ask_cache(stack, mallory)
    assert (response.status_code, error_code(response)) == (409, "upload_needed")
    assert stack.upload(mallory, VIDEO).status_code == 202  # converted for her like any file


def tagged_mp3(tmp_path: Path, tags: Tags) -> bytes:
    """MP3 with the ID3 tag the converter writes."""
    path = tmp_path / "tagged.mp3"
    path.write_bytes(MP3)
    write_tags(path, tags)
    return path.read_bytes()


def upload_as(stack: Stack, headers: dict[str, str], filename: str, **form: str) -> Any:
    data = {**form, "file": (io.BytesIO(VIDEO), filename)}
    return stack.client.post("/api/v1/jobs", headers=headers, data=data)


def test_an_operator_can_share_the_cache_across_users(make: Make, tmp_path: Path) -> None:
    stack = make(cache_across_owners=True)
    chapters = (Chapter(0.0, 1.0, "From the video"),)
    first = upload_as(stack, stack.headers, "Ann's secret trip.mp4", artist="Band").get_json()
    ann_mp3 = tagged_mp3(tmp_path, Tags("Ann's secret trip", "Band", chapters=chapters))
    stack.finish(first["id"], content=ann_mp3)
    mallory = stack.user("mallory@example.com")
    hit = upload_as(stack, mallory, "mallory.mp4", artist="Band")
    assert (hit.status_code, hit.get_json()["status"]) == (201, "succeeded")
    job = hit.get_json()
    assert job["mp3_fid"] != stack.job(first["id"])["mp3_fid"]  # her own copy
    served = stack.client.get(f"/api/v1/jobs/{job['id']}/mp3", headers=mallory).data
    tag = ID3(io.BytesIO(served))
    assert str(tag["TIT2"]) == "mallory"
    assert (str(tag["TPE1"]), tag["CHAP:ch0"].sub_frames["TIT2"].text) == (
        "Band",
        ["From the video"],
    )
    assert b"Ann" not in served
    assert b"secret" not in served
    assert served.endswith(MP3)  # the same audio
    # Ann's MP3 is untouched, and her deleting it leaves Mallory's.
    assert (
        stack.client.get(f"/api/v1/jobs/{first['id']}/mp3", headers=stack.headers).data == ann_mp3
    )
    stack.client.delete(f"/api/v1/jobs/{first['id']}", headers=stack.headers)
    assert stack.client.get(f"/api/v1/jobs/{job['id']}/mp3", headers=mallory).data == served


def test_a_hash_alone_never_answers_from_another_users_conversion(make: Make) -> None:
    stack = make(cache_across_owners=True)
    converted(stack, stack.headers)
    mallory = stack.user("mallory@example.com")
    for size in (1, len(VIDEO)):  # a SHA-256 proves nothing of holding the file
        response = ask_cache(stack, mallory, size=size)
        assert (response.status_code, error_code(response)) == (409, "upload_needed")
    assert ask_cache(stack, stack.headers).status_code == 201  # the owner's own: answered


def test_deleting_one_job_never_breaks_another_sharing_its_mp3(stack: Stack) -> None:
    first = converted(stack, stack.headers)
    second = stack.upload(stack.headers, VIDEO).get_json()
    assert (
        stack.client.delete(f"/api/v1/jobs/{first['id']}", headers=stack.headers).status_code == 204
    )
    for url in (f"/api/v1/jobs/{second['id']}/mp3", f"/download?fid={second['mp3_fid']}"):
        assert stack.client.get(url, headers=stack.headers).data == MP3
    assert (
        stack.client.delete(f"/api/v1/jobs/{second['id']}", headers=stack.headers).status_code
        == 204
    )
    assert files(stack) == set()  # the last holder takes the MP3 with it


def test_expired_jobs_answer_410_at_once_then_are_swept(make: Make) -> None:
    stack = make(keep_mp3s_for="1s")
    job = converted(stack, stack.headers)
    assert job["expires_at"] is not None
    wait_for(lambda: stack.job(job["id"]).get("error"), 5, "the job to expire")
    for url in (
        f"/api/v1/jobs/{job['id']}",
        f"/api/v1/jobs/{job['id']}/mp3",
        f"/download?fid={job['mp3_fid']}",
    ):
        response = stack.client.get(url, headers=stack.headers)
        assert (response.status_code, error_code(response)) == (410, "expired"), url
    assert stack.client.get("/api/v1/jobs", headers=stack.headers).get_json()["total"] == 0
    assert files(stack)  # the sweeper has not been by yet
    stack.background.sweep()
    assert files(stack) == set()
    assert stack.client.get(f"/api/v1/jobs/{job['id']}", headers=stack.headers).status_code == 404


def test_job_json_and_the_finished_event_say_when_it_expires(stack: Stack) -> None:
    job = converted(stack, stack.headers)
    expires = job["expires_at"]
    assert expires.endswith("Z")
    settled = stack.jobs.get(job["id"], 1)
    assert settled is not None
    assert settled.expires_at is not None
    assert (settled.expires_at - settled.updated_at).days == 7  # the default
    finished = settled.finished_event(None).data
    assert isinstance(finished, JobFinished)
    assert finished.expires_at == expires


def test_mp3_responses_may_be_cached_privately_until_expiry(stack: Stack) -> None:
    job = converted(stack, stack.headers)
    response = stack.client.get(f"/api/v1/jobs/{job['id']}/mp3", headers=stack.headers)
    cache = response.cache_control
    assert cache.private
    assert cache.immutable
    assert 7 * 86400 - 60 <= (cache.max_age or 0) <= 7 * 86400
    etag = response.headers["ETag"]
    assert etag.startswith('"')  # strong
    again = stack.client.get(
        f"/api/v1/jobs/{job['id']}/mp3", headers={**stack.headers, "If-None-Match": etag}
    )
    assert (again.status_code, again.data) == (304, b"")


def test_over_the_quota_is_413_and_stores_nothing(make: Make) -> None:
    stack = make(quota_bytes=len(VIDEO) + len(MP3) + 10)
    converted(stack, stack.headers)  # the MP3 is kept, the video gone
    wait_for(lambda: len(files(stack)) == 2, 5, "the video to go")
    response = stack.upload(stack.headers, VIDEO * 2)  # found out while it streams
    assert (response.status_code, error_code(response)) == (413, "quota_exceeded")
    assert len(files(stack)) == 2
    assert stack.client.get("/api/v1/jobs", headers=stack.headers).get_json()["total"] == 1

    def unread() -> Iterator[bytes]:
        raise AssertionError("the body was read")
        yield b""

    gateway = stack.app.extensions["video2mp3.gateway"]
    with pytest.raises(QuotaExceeded):  # a declared size is refused before a byte is read
        gateway.upload(
            Principal(1, "ann@example.com"),
            "a.mp4",
            unread(),
            ConversionOptions(),
            declared_size=len(VIDEO) * 2,
        )


def test_too_many_active_jobs_is_429_with_retry_after(make: Make) -> None:
    stack = make(max_active_jobs=1)
    assert stack.upload(stack.headers, b"one").status_code == 202
    stored = files(stack)
    response = stack.upload(stack.headers, b"two")
    assert (response.status_code, error_code(response)) == (429, "too_many_jobs")
    assert int(response.headers["Retry-After"]) > 0
    assert files(stack) == stored


def test_the_collector_removes_blobs_no_job_holds(make: Make) -> None:
    stack = make(orphan_grace="0")
    job = converted(stack, stack.headers)
    orphan = stack.blobs.put(iter([b"left by a crash"]), filename="x", content_type="x")
    time.sleep(0.01)  # mtimes: the orphan must be older than "now minus no grace"
    stack.background.collect()
    assert files(stack) == {job["mp3_fid"], job["mp3_fid"] + ".json"}
    assert orphan.id not in files(stack)
    assert stack.client.get(f"/api/v1/jobs/{job['id']}/mp3", headers=stack.headers).data == MP3


def test_uploads_are_hashed_as_they_stream(stack: Stack) -> None:
    job_id = stack.upload(stack.headers, VIDEO).get_json()["id"]
    stored = stack.jobs.get(job_id, 1)
    assert stored is not None
    assert (stored.video_sha256, stored.video_size) == (SHA, len(VIDEO))


def metric(stack: Stack, name: str, **labels: str) -> float:
    """A sample of this process's registry (what the services serve on their /metrics)."""
    text = generate_latest().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_storage_is_measured(make: Make) -> None:
    stack = make(keep_mp3s_for="1s", orphan_grace="0")
    names = {
        "hits": ("video2mp3_cache_lookups_total", {"result": "hit"}),
        "misses": ("video2mp3_cache_lookups_total", {"result": "miss"}),
        "jobs": ("video2mp3_expired_deletions_total", {"kind": "job"}),
        "videos": ("video2mp3_expired_deletions_total", {"kind": "video"}),
        "orphans": ("video2mp3_orphans_collected_total", {}),
    }
    before = {key: metric(stack, name, **labels) for key, (name, labels) in names.items()}
    converted(stack, stack.headers)  # a miss
    hit = stack.upload(stack.headers, VIDEO)
    assert hit.status_code == 201
    stack.background.sweep()
    assert metric(stack, "video2mp3_stored_bytes", kind="mp3") == len(MP3)
    assert metric(stack, "video2mp3_stored_bytes", kind="video") == 0
    stack.blobs.put(iter([b"orphan"]), filename="x", content_type="x")
    time.sleep(0.01)  # older than "now minus no grace"
    stack.background.collect()
    # The hit settled last, so it expires last.
    wait_for(lambda: stack.job(hit.get_json()["id"]).get("error"), 5, "the jobs to expire")
    stack.background.sweep()
    after = {key: metric(stack, name, **labels) for key, (name, labels) in names.items()}
    grown = {key: after[key] - before[key] for key in names}
    assert grown == {"hits": 1, "misses": 1, "jobs": 2, "videos": 2, "orphans": 1}
