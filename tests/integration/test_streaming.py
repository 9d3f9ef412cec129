"""Conversion while the upload arrives, on the embedded stack (local blobs, SQLite, in-process
bus: ``make run``) and on the distributed one (GridFS over the wire server, MariaDB, RabbitMQ).

Uploads go through the gateway's use case from a generator that stops before its last piece
until the test lets it go, so what happens meanwhile is observed, not timed.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.integration.harness import PROBER
from tests.support import FFMPEG, decoded_seconds, delete_topology, wait_for
from video2mp3 import bootstrap, signing
from video2mp3.adapters.blobs.gridfs import GridFSBlobStore
from video2mp3.adapters.bus.rabbitmq import RabbitMQBus
from video2mp3.auth.keys import generate
from video2mp3.converter.media import Transcoder
from video2mp3.converter.worker import Converter, mp3_blob_id
from video2mp3.domain.jobs import Job, Status
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import BlobNotFound
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.tokens import Principal
from video2mp3.settings import Settings, load

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)

SECONDS = 90
PIECE = 64 * 1024
TRICKLE, TRICKLE_EVERY = 4 * 1024, 0.1  # 40 KB/s: about 30 s from two thirds to nine tenths
OWNER = Principal(1, "ann@example.com")
NOISE = ("-f", "lavfi", "-i", f"anoisesrc=d={SECONDS}:a=0.2")
PICTURE = ("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={SECONDS}")
ENCODE = ("-c:v", "libx264", "-preset", "ultrafast", "-b:v", "400k", "-c:a", "aac", "-shortest")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Five-megabyte videos of 90 s in each container, and an MP4 with its index at the end."""
    import subprocess

    folder = tmp_path_factory.mktemp("streamed")
    made = {}
    for name, extra in [("a.mkv", ()), ("a.ts", ()), ("a.avi", ()), ("a.flv", ()),
                        ("front.mp4", ("-movflags", "+faststart")), ("end.mp4", ())]:  # fmt: skip
        path = folder / name
        subprocess.run([FFMPEG, "-loglevel", "error", "-y", *PICTURE, *NOISE, *ENCODE, *extra,
                        str(path)], check=True, timeout=120)  # fmt: skip
        made[name] = path.read_bytes()
    return made


class Stack:
    """The gateway's use case, its worker's loops and a converter, on real adapters."""

    def __init__(self, settings: Settings) -> None:
        bootstrap.create_schemas(settings, "gateway")
        self.settings = settings
        self.blobs = bootstrap.blob_store(settings, "test")
        self.bus = bootstrap.bus(settings, "test")
        self.jobs = bootstrap.jobs(settings)
        worker, background = bootstrap.gateway_worker(settings, self.jobs, self.blobs, self.bus)
        self.gateway = Gateway(
            self.jobs,
            self.blobs,
            settings.max_upload_bytes,
            bootstrap.links(settings),
            on_queued=background.wake_relay,
            stream_after_bytes=settings.stream_after_bytes,
        )
        transcoder = Transcoder(FFMPEG, timeout=120, max_seconds=3600, prober=PROBER)
        # Its sandbox child started here: the kernel ends it with the thread that started it.
        transcoder.start()
        converter = Converter(self.blobs, self.bus, transcoder)
        loops = {**worker.loops, "converter": bootstrap.consume(self.bus, "converter",
                                                               converter.handle)}  # fmt: skip
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=loop, args=(self.stopping,)) for loop in loops.values()
        ]
        for thread in self.threads:
            thread.start()

    def only_job(self) -> Job | None:
        jobs, _ = self.jobs.page(OWNER.user_id, limit=2, offset=0)
        assert len(jobs) <= 1
        return jobs[0] if jobs else None

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)
        if isinstance(self.blobs, GridFSBlobStore):
            self.blobs.close()
        if isinstance(self.bus, RabbitMQBus):
            self.bus.close()
            delete_topology(str(self.settings.broker_url), self.bus.prefix)


def settings_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    generate(tmp_path / "keys")
    signing.generate(tmp_path / "link-keys")
    common: dict[str, Any] = {
        "jwt_key_dir": tmp_path / "keys",
        "link_key_dir": tmp_path / "link-keys",
        "stream_after_bytes": 1024**2,
    }
    if kind == "local":
        return load(jobs_db_url=f"sqlite:///{tmp_path}/jobs.db", blob_dir=tmp_path / "blobs",
                    broker_url="memory://", mongodb_url=None, **common)  # fmt: skip
    return load(
        jobs_db_url=request.getfixturevalue("mysql_database"),
        mongodb_url=request.getfixturevalue("mongodb_url"),
        broker_url=request.getfixturevalue("amqp_url"),
        broker_prefix=f"v2m-test-{uuid.uuid4().hex[:8]}",
        blob_dir=None,
        **common,
    )


@pytest.fixture(params=["local", "distributed"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(settings_for(request.param, tmp_path, request))
    try:
        yield stack
    finally:
        stack.stop()


class SlowUpload:
    """An upload of ``data`` in a thread that sends two thirds of it, then slowly up to nine
    tenths, then waits for ``finish`` (or ``fail``: the client goes away). Two thirds are 60 s:
    ffmpeg reads up to 30 s of a container without a header (MPEG-TS) to find its streams."""

    def __init__(self, stack: Stack, data: bytes, name: str) -> None:
        self.data, self.held, self.gate = data, threading.Event(), threading.Event()
        self.failing = False
        self.job: Job | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._upload, args=(stack, name))
        self.thread.start()
        assert self.held.wait(60), "the upload did not reach two thirds"

    def _upload(self, stack: Stack, name: str) -> None:
        try:
            self.job = stack.gateway.upload(OWNER, name, self._chunks(), ConversionOptions())
        except BaseException as exc:
            self.error = exc

    def _chunks(self) -> Iterator[bytes]:
        """Two thirds at once, then a trickle (a slow link: an ffmpeg before 7.0 reports its
        progress only while input arrives), then nothing from nine tenths on until ``finish``."""
        hold_at, trickle_to = len(self.data) * 2 // 3, len(self.data) * 9 // 10
        offset = 0
        while offset < len(self.data):
            size = PIECE
            if offset >= hold_at:
                self.held.set()
                if offset >= trickle_to:
                    assert self.gate.wait(120)
                elif not self.gate.wait(TRICKLE_EVERY):
                    size = TRICKLE
                if self.failing:
                    raise ConnectionResetError("the client went away")
            yield self.data[offset : offset + size]
            offset += size

    def finish(self, *, fail: bool = False) -> None:
        self.failing = fail
        self.gate.set()
        self.thread.join(60)


def converted(outcome: str) -> float:
    return REGISTRY.get_sample_value("video2mp3_conversions_total", {"outcome": outcome}) or 0.0


@pytest.mark.parametrize("name", ["a.mkv", "front.mp4", "a.ts", "a.avi", "a.flv"])
def test_conversion_starts_while_the_upload_arrives(
    stack: Stack, videos: dict[str, bytes], name: str, tmp_path: Path
) -> None:
    upload = SlowUpload(stack, videos[name], name)
    try:
        # A third is held back, yet ffmpeg has converted audio already.
        job = wait_for(
            lambda: (j := stack.only_job()) and j.progress > 0 and j,
            60,
            "the conversion to make progress during the upload",
        )
        assert isinstance(job, Job)
        assert job.status is Status.PROCESSING
    finally:
        upload.finish()
    assert upload.error is None
    assert upload.job is not None
    done = wait_for(
        lambda: (j := stack.jobs.get(job.id, OWNER.user_id)) and j.finished and j, 120, "the job"
    )
    assert isinstance(done, Job)
    assert (done.status, done.error_code) == (Status.SUCCEEDED, None)
    assert done.video_size == len(videos[name])
    assert done.video_sha256 == hashlib.sha256(videos[name]).hexdigest()
    assert done.mp3_fid is not None
    mp3 = tmp_path / "out.mp3"
    with stack.blobs.open(done.mp3_fid) as reader:
        mp3.write_bytes(reader.read())
    assert decoded_seconds(mp3) == pytest.approx(SECONDS, abs=0.1)  # all of it, not the head


def test_an_mp4_with_its_index_at_the_end_waits_for_the_whole_upload(
    stack: Stack, videos: dict[str, bytes]
) -> None:
    upload = SlowUpload(stack, videos["end.mp4"], "end.mp4")
    try:
        # Past the early-start threshold and its decision, no job: it cannot be read yet.
        assert stack.only_job() is None
    finally:
        upload.finish()
    assert upload.job is not None
    done = wait_for(
        lambda: (j := stack.jobs.get(upload.job.id, OWNER.user_id)) and j.finished and j,
        120,
        "the job",
    )
    assert isinstance(done, Job)
    assert done.status is Status.SUCCEEDED


def test_an_aborted_upload_leaves_no_mp3_no_video_and_a_job_that_says_why(
    stack: Stack, videos: dict[str, bytes]
) -> None:
    before = converted("upload_failed")
    upload = SlowUpload(stack, videos["a.mkv"], "a.mkv")
    try:
        job = wait_for(
            lambda: (j := stack.only_job()) and j.progress > 0 and j, 60, "the conversion"
        )
    finally:
        upload.finish(fail=True)
    assert isinstance(upload.error, ConnectionResetError)
    assert isinstance(job, Job)
    failed = stack.jobs.get(job.id, OWNER.user_id)
    assert failed is not None
    assert (failed.status, failed.error_code) == (Status.FAILED, "upload_failed")
    assert "did not complete" in (failed.error_message or "")
    # The converter stops and keeps nothing.
    wait_for(lambda: converted("upload_failed") > before, 60, "the converter to give up")
    with pytest.raises(BlobNotFound):
        stack.blobs.open(mp3_blob_id(job.id))
    assert job.video_fid is not None
    with pytest.raises(BlobNotFound):
        next(stack.blobs.follow(job.video_fid, stall_seconds=1))
    after = stack.jobs.get(job.id, OWNER.user_id)
    assert after is not None
    assert (after.status, after.mp3_fid) == (Status.FAILED, None)


def test_a_file_cut_short_is_refused_once_whole_though_its_head_looked_fine(
    stack: Stack, videos: dict[str, bytes]
) -> None:
    cut = videos["a.mkv"][: len(videos["a.mkv"]) * 4 // 5]  # its header still says 90 s
    upload = SlowUpload(stack, cut, "cut.mkv")
    try:
        job = wait_for(
            lambda: (j := stack.only_job()) and j.progress > 0 and j, 60, "the conversion"
        )
    finally:
        upload.finish()
    assert isinstance(job, Job)
    assert upload.job is not None
    done = wait_for(
        lambda: (j := stack.jobs.get(job.id, OWNER.user_id)) and j.finished and j, 120, "the job"
    )
    assert isinstance(done, Job)
    assert (done.status, done.error_code, done.mp3_fid) == (Status.FAILED, "truncated", None)
    with pytest.raises(BlobNotFound):
        stack.blobs.open(mp3_blob_id(job.id))
