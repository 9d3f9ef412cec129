"""The user's whole journey, run against any running stack: sign up, upload, wait, read the email,
download (both endpoints, with Range), and check what another user can see."""

from __future__ import annotations

import email.message
import os
import re
from collections.abc import Callable
from pathlib import Path

import requests

from tests.support import SAMPLES, inspect_audio, wait_for

Inbox = Callable[[], list[email.message.Message]]
EXPECTED_FAILURES = {"no_audio.mp4": "no_audio", "random.bin": "invalid_media"}
E2E_SAMPLES = [
    "h264_aac.mp4",
    "vp9_opus.webm",
    "moov_at_end.mp4",
    "surround_5_1.mkv",
    "no_audio.mp4",
]


def sign_up(base: str, address: str) -> dict[str, str]:
    body = {"email": address, "password": "pw-123456"}
    assert requests.post(f"{base}/api/v1/users", json=body, timeout=10).status_code == 201
    token = requests.post(f"{base}/login", auth=(address, "pw-123456"), timeout=10)
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.text}"}


def fill_up(base: str, user: dict[str, str], long_audio: Path) -> None:
    """Take two of the user's places for many seconds: the long audio converts (one converter)
    while its twin (other options, so no cache hit) waits behind it."""
    for bitrate in ("64", "96"):
        with long_audio.open("rb") as body:
            created = requests.post(
                f"{base}/api/v1/jobs",
                headers=user,
                data={"bitrate": bitrate},
                files={"file": (long_audio.name, body)},
                timeout=60,
            )
        assert created.status_code == 202, created.text


def run_journey(base: str, samples: dict[str, Path], inbox: Inbox, tmp: Path) -> None:
    user = sign_up(base, "ann@example.com")
    mallory = sign_up(base, "mallory@example.com")
    uploads = {name: samples[name].read_bytes() for name in E2E_SAMPLES}
    uploads["random.bin"] = os.urandom(100_000)

    jobs = {}
    for i, (name, data) in enumerate(uploads.items()):
        path = "/upload" if i % 2 else "/api/v1/jobs"  # both the seed's and the versioned API
        response = requests.post(
            f"{base}{path}", headers=user, files={"file": (name, data)}, timeout=30
        )
        assert response.status_code == 202, response.text
        jobs[name] = response.json()["id"]

    def finished(job_id: str) -> dict | None:
        job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers=user, timeout=10).json()
        return job if job["status"] in ("succeeded", "failed") else None

    results = {
        name: wait_for(lambda j=job_id: finished(j), 120, f"{name} to finish")
        for name, job_id in jobs.items()
    }

    for name, job in results.items():
        if name in EXPECTED_FAILURES:
            assert job["status"] == "failed", job
            assert job["error"]["code"] == EXPECTED_FAILURES[name]
            continue
        assert job["status"] == "succeeded", job
        assert job["progress"] == 1.0
        check_downloads(base, user, mallory, name, job, tmp)

    wait_for(lambda: len(inbox()) >= len(jobs), 30, "one email per job")
    bodies = [m.get_payload(decode=True).decode() for m in inbox()]
    assert len(bodies) == len(jobs)
    for job in results.values():
        [body] = [b for b in bodies if job["id"] in b]
        if job["status"] == "succeeded":
            assert job["mp3_fid"] in body
            [link] = re.findall(r"https?://\S+/mp3/\S+", body)
            emailed = requests.get(link, timeout=30)  # a click in a mail client: no credentials
            assert emailed.status_code == 200, emailed.text
            assert len(emailed.content) == job["mp3_size"]
        else:
            assert job["error"]["code"] in body
    assert all(m["To"] == "ann@example.com" for m in inbox())

    listing = requests.get(f"{base}/api/v1/jobs?limit=100", headers=user, timeout=10).json()
    assert {j["id"] for j in listing["items"]} == set(jobs.values())
    assert requests.get(f"{base}/api/v1/jobs", headers=mallory, timeout=10).json()["total"] == 0

    doomed = jobs["h264_aac.mp4"]
    assert (
        requests.delete(f"{base}/api/v1/jobs/{doomed}", headers=user, timeout=10).status_code == 204
    )
    assert (
        requests.get(f"{base}/api/v1/jobs/{doomed}/mp3", headers=user, timeout=10).status_code
        == 404
    )
    link = results["h264_aac.mp4"]["download_url"]
    assert requests.get(link, timeout=10).status_code == 404  # the job is gone: so is its link


def check_downloads(base: str, user: dict, mallory: dict, name: str, job: dict, tmp: Path) -> None:
    urls = [f"{base}/api/v1/jobs/{job['id']}/mp3", f"{base}/download?fid={job['mp3_fid']}"]
    for url in urls:
        response = requests.get(url, headers=user, timeout=30)
        assert requests.get(url, timeout=10).status_code == 401  # these two need the token
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "audio/mpeg"
        assert int(response.headers["Content-Length"]) == len(response.content) == job["mp3_size"]
        assert re.search(r'filename="?[^"]+\.mp3', response.headers["Content-Disposition"])
        part = requests.get(url, headers={**user, "Range": "bytes=10-29"}, timeout=10)
        assert (part.status_code, part.content) == (206, response.content[10:30])
        assert requests.get(url, headers=mallory, timeout=10).status_code == 404
        mp3 = tmp / f"{name}.mp3"
        mp3.write_bytes(response.content)
        facts = inspect_audio(mp3)
        assert (facts.format, facts.codec) == ("mp3", "mp3")
        assert abs(facts.duration - (SAMPLES[name].audio_seconds or 0)) <= 0.1, (name, facts)
    # The signed link: no header, Range for a seeking player, the same bytes.
    link = job["download_url"]
    assert link.startswith(f"{base}/mp3/")
    whole = requests.get(link, timeout=30)
    assert (whole.status_code, whole.content) == (200, response.content)
    part = requests.get(link, headers={"Range": "bytes=10-29"}, timeout=10)
    assert (part.status_code, part.content) == (206, response.content[10:30])
