"""``video2mp3 admin usage``: an operator's view of what each user stores and has running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from video2mp3 import migrations
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.jobs import SQLJobRepository
from video2mp3.domain.events import ConversionSucceeded, Event, Owner
from video2mp3.domain.jobs import Job, utcnow

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO2MP3_")}


def admin(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "video2mp3.cli", "admin", *args],
        env={**CLEAN_ENV, **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_usage_lists_each_users_bytes_and_active_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    engine = create_engine(url)
    migrations.upgrade(engine, "gateway")
    jobs = SQLJobRepository(engine)
    ann = Job(
        owner_id=1, owner_email="ann@example.com", filename="a", video_fid="v1", video_size=5000
    )
    bob = Job(
        owner_id=2, owner_email="bob@example.com", filename="b", video_fid="v2", video_size=700
    )
    for job in (ann, bob):
        jobs.add(job, job.requested_event(None))
    jobs.apply(Event(ann.id, ConversionSucceeded("m1", 300, 1.0, Owner(1, "ann@example.com"), "a")))
    jobs.release_videos(utcnow())  # ann's video goes once her MP3 is stored

    done = admin("usage", "--json", VIDEO2MP3_JOBS_DB_URL=url)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == [
        {"owner_id": 1, "email": "ann@example.com", "jobs": 1, "active_jobs": 0,
         "video_bytes": 0, "mp3_bytes": 300, "stored_bytes": 300},
        {"owner_id": 2, "email": "bob@example.com", "jobs": 1, "active_jobs": 1,
         "video_bytes": 700, "mp3_bytes": 0, "stored_bytes": 700},
    ]  # fmt: skip
    table = admin("usage", VIDEO2MP3_JOBS_DB_URL=url)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["owner_id", "email", "jobs", "active_jobs", "video_bytes",
                              "mp3_bytes", "stored_bytes"]  # fmt: skip
    assert lines[1].split() == ["2", "bob@example.com", "1", "1", "700", "0", "700"]


def test_usage_names_the_missing_database_setting() -> None:
    done = admin("usage")
    assert done.returncode == 2
    assert "VIDEO2MP3_JOBS_DB_URL is required" in done.stderr
