"""One long input spread across two converters on the real RabbitMQ and a GridFS server.

Both converters run as ``bootstrap`` wires them (one segment consumer per core, two cores each),
under a prefix of their own. The measure of a seam is test_segments's: the decoded MP3 minus the
source audio, as RMS per MP3 frame, no larger around a seam than the largest elsewhere.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pika
import pytest
from mutagen.id3 import ID3

from tests.e2e.test_distributed import delete_topology
from tests.integration.harness import Harness
from tests.integration.test_segments import decoded
from tests.support import FFMPEG, MAKER, decoded_seconds, inspect_audio, loudness, wait_for
from video2mp3 import bootstrap
from video2mp3.adapters.blobs.gridfs import GridFSBlobStore
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.adapters.bus.rabbitmq import RabbitMQBus
from video2mp3.converter.exchange import audio_blob_id, blob_exists, part_blob_id
from video2mp3.converter.fanout import SegmentEncoder
from video2mp3.converter.mp3 import frame_samples
from video2mp3.domain.events import (
    ConversionFailed,
    ConversionProgress,
    ConversionSucceeded,
    Event,
    Owner,
    SegmentRequested,
)
from video2mp3.domain.jobs import Job, Status, utcnow
from video2mp3.domain.options import ConversionOptions
from video2mp3.gateway.background import track
from video2mp3.ports.blobs import BlobInfo
from video2mp3.ports.bus import GiveUp, Handler
from video2mp3.settings import load

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)

SECONDS, RATE = 200, 48000


class WatchedBus(RabbitMQBus):
    """The real bus, telling which converter handled which event."""

    def __init__(self, url: str, prefix: str, name: str, seen: list[tuple[str, Event]]) -> None:
        super().__init__(url, prefix=prefix, retry_base=0.05)
        self.name, self.seen = name, seen

    def consume(
        self, queue: str, handler: Handler, stop: threading.Event, give_up: GiveUp | None = None
    ) -> None:
        def watched(event: Event) -> None:
            self.seen.append((self.name, event))
            handler(event)

        super().consume(queue, watched, stop, give_up)


class DyingBlobs(GridFSBlobStore):
    """The real blob store, counting stores; the converter that encoded ``dies_on`` first dies
    before storing it."""

    def __init__(self, url: str, database: str) -> None:
        super().__init__(url, database)
        self.dies_on, self.stored = "", Counter[str]()

    def put(self, chunks: Iterable[bytes], *, filename: str, content_type: str,
            blob_id: str | None = None) -> BlobInfo:  # fmt: skip
        self.stored[blob_id or "?"] += 1
        if blob_id == self.dies_on and self.stored[blob_id] == 1:
            raise RuntimeError("the converter died")
        return super().put(chunks, filename=filename, content_type=content_type, blob_id=blob_id)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fanout") / "long.mp4"
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", f"color=size=64x64:rate=1:d={SECONDS}",
         "-f", "lavfi", "-i", f"anoisesrc=d={SECONDS}:c=pink:r={RATE}:a=0.2", "-ac", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture
def prefix(amqp_url: str) -> Iterator[str]:
    name = f"test-fanout-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topology(amqp_url, name)


@pytest.fixture
def blobs(mongodb_url: str) -> Iterator[DyingBlobs]:
    store = DyingBlobs(mongodb_url, "video2mp3")  # the URL names the database
    yield store
    store.close()


def test_a_long_input_is_encoded_by_both_converters_and_joined_gapless(
    amqp_url: str,
    mongodb_url: str,
    blobs: DyingBlobs,
    mysql_database: str,
    prefix: str,
    long_video: Path,
    tmp_path: Path,
) -> None:
    settings = load(
        broker_url=amqp_url,
        broker_prefix=prefix,
        mongodb_url=mongodb_url,
        jobs_db_url=mysql_database,
        converter_cores=2,
        fan_out_after_seconds=60,
    )
    bootstrap.create_schemas(settings, "gateway")
    jobs = bootstrap.jobs(settings)
    later = utcnow() + timedelta(days=1)
    others = set(blobs.stored_before(later))  # other tests' blobs in the session's server
    video = blobs.put([long_video.read_bytes()], filename="long.mp4", content_type="video/mp4")
    job = Job(owner_id=1, owner_email="a@example.com", filename="long.mp4", video_fid=video.id)
    blobs.dies_on = part_blob_id(job.id, 1)
    seen: list[tuple[str, Event]] = []
    buses = [RabbitMQBus(amqp_url, prefix=prefix)]
    gateway, _ = bootstrap.gateway_worker(settings, jobs, blobs, buses[0])
    loops = list(gateway.loops.values())
    for name in ("a", "b"):
        buses.append(WatchedBus(amqp_url, prefix, name, seen))
        loops += bootstrap.converter_worker(settings, blobs, buses[-1]).loops.values()
    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(stop,)) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: consumers(amqp_url, f"{prefix}.segments") == 4, 30, "both converters")
        jobs.add(job, job.requested_event("c-fanout"))  # the gateway worker's relay sends it
        done = wait_for(lambda: (j := jobs.get(job.id, 1)) and j.finished and j, 120, "the job")
        assert isinstance(done, Job)
        assert done.status == Status.SUCCEEDED, done.error_message
        # The video released, the parts, audio and tag deleted, a second merge's MP3 (if two
        # converters merged at once) deleted by the gateway: one MP3 and nothing else.
        ours = lambda: set(blobs.stored_before(later)) - others  # noqa: E731
        wait_for(lambda: ours() == {done.mp3_fid}, 30, "one blob left")
        wait_for(lambda: messages(amqp_url, f"{prefix}.notifier") >= 1, 30, "job.finished")
        assert messages(amqp_url, f"{prefix}.notifier") == 1  # one email
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        for bus in buses:
            bus.close()

    tasks = [e.data for _, e in seen if isinstance(e.data, SegmentRequested)]
    assert len(tasks[0].bounds) == 5  # a segment for each of the 4 cores consuming segments
    # Each segment encoded once, but the one whose converter died: only it was done again.
    assert {k: blobs.stored[part_blob_id(job.id, k)] for k in range(4)} == {
        k: 2 if k == 1 else 1 for k in range(4)
    }
    assert [e.type for _, e in seen].count("conversion.requested") == 1  # never the whole job
    assert {name for name, e in seen if isinstance(e.data, SegmentRequested)} == {"a", "b"}

    mp3 = tmp_path / "out.mp3"
    assert done.mp3_fid is not None
    with blobs.open(done.mp3_fid) as reader:
        mp3.write_bytes(reader.read())
    source = tmp_path / "source.pcm"
    subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(long_video), "-map", "0:a:0",
                    "-f", "f32le", str(source)], check=True)  # fmt: skip
    single = tmp_path / "single.mp3"
    subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(long_video), "-map", "0:a:0",
                    "-c:a", "libmp3lame", "-q:a", "2", str(single)], check=True)  # fmt: skip
    expected = np.fromfile(source, dtype="<f4").reshape(-1, 2).T
    ours, theirs = decoded(mp3), decoded(single)
    seams = len(tasks[0].bounds) - 2
    assert abs(ours.shape[1] - theirs.shape[1]) <= seams * frame_samples(RATE)
    assert ours.shape == expected.shape  # to the sample
    assert done.duration == pytest.approx(ours.shape[1] / RATE, abs=0.001)

    size = frame_samples(RATE)
    frames = expected.shape[1] // size
    error = (ours - expected)[:, : frames * size].reshape(2, frames, size)
    rms = np.sqrt((error**2).mean(axis=(0, 2)))
    near = sorted({b // size + d for b in tasks[0].bounds[1:-1] for d in (-1, 0, 1)})
    assert rms[near].max() <= np.delete(rms, near).max()


def messages(amqp_url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count)


def consumers(amqp_url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.consumer_count)


def test_two_merges_leave_one_mp3_and_one_finished_job(mysql_database: str, tmp_path: Path) -> None:
    """Two converters that both merge store an MP3 each; the gateway keeps the first it hears
    of, deletes the other, and settles the job once (one ``job.finished``, one email)."""
    settings = load(jobs_db_url=mysql_database)
    bootstrap.create_schemas(settings, "gateway")
    jobs, blobs = bootstrap.jobs(settings), LocalBlobStore(tmp_path / "blobs")
    job = Job(owner_id=1, owner_email="a@example.com", filename="long.mp4", video_fid="v")
    jobs.add(job, job.requested_event(None))
    assert jobs.relay_outbox(lambda _: None) == 1
    mp3s = [
        blobs.put([b"ID3 merged"], filename="long.mp3", content_type="audio/mpeg") for _ in "ab"
    ]
    settled = [
        track(
            jobs,
            blobs,
            Event(job.id, ConversionSucceeded(m.id, m.size, 200.0, job.owner, "long.mp4")),
        )
        for m in mp3s
    ]
    assert settled == [True, False]
    assert blob_exists(blobs, mp3s[0].id)
    assert not blob_exists(blobs, mp3s[1].id)  # the second merge's
    finished: list[str] = []
    assert jobs.relay_outbox(finished.append) == 1
    assert Event.from_json(finished[0]).type == "job.finished"


def test_a_segment_that_cannot_be_decoded_fails_the_job_and_stops_the_others(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    encoder = SegmentEncoder(harness.blobs, harness.bus, harness.converter.transcoder)
    job = str(uuid.uuid4())
    garbage = [b"not audio at all" * 100]
    harness.blobs.put(garbage, filename="a.mka", content_type="x/y", blob_id=audio_blob_id(job))
    owner = Owner(1, "a@example.com")
    tasks = [
        SegmentRequested(k, (0, 1_440_000, 2_880_000), RATE, 2, owner, "a.mp4") for k in (1, 0)
    ]
    for task in tasks:
        encoder.handle(Event(job, task))
    [failed] = [e.data for e in harness.bus.published]  # the second segment is dropped
    assert isinstance(failed, ConversionFailed)
    assert failed.code == "invalid_media"
    assert not blob_exists(harness.blobs, audio_blob_id(job))


@pytest.mark.parametrize("start", [None, 4.5])
def test_every_option_holds_across_converters(
    long_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: float | None
) -> None:
    """Trim, channels, normalisation (measured once, over the whole) and tags, on segments
    handled one by one as converters would; a trim makes each decode from the trim's start."""
    harness = Harness(tmp_path, fan_out_after=20)
    monkeypatch.setattr(harness.bus, "consumers", lambda _queue: 3)
    options = ConversionOptions(start=start, end=(start or 0) + 96, normalize=-20, channels=1,
                                title="Long")  # fmt: skip
    harness.convert(long_video.read_bytes(), "long.mp4", options, job_id="job-spread")
    tasks = [e for e in harness.bus.published if isinstance(e.data, SegmentRequested)]
    assert len(tasks) == 3
    encoder = SegmentEncoder(harness.blobs, harness.bus, harness.converter.transcoder)
    for task in tasks:
        encoder.handle(task)
    succeeded = harness.bus.published[-1]
    mp3 = harness.mp3(succeeded, tmp_path)
    assert decoded_seconds(mp3) == pytest.approx(96.0, abs=0.001)  # gapless, to the sample
    assert inspect_audio(mp3).channels == 1
    integrated, peak = loudness(mp3)
    assert integrated == pytest.approx(-20, abs=1.0)
    assert peak <= -1.0
    assert str(ID3(mp3)["TIT2"]) == "Long"
    progress = [
        e.data.progress for e in harness.bus.published if isinstance(e.data, ConversionProgress)
    ]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert not blob_exists(harness.blobs, audio_blob_id("job-spread"))


def test_channels_in_an_order_of_their_own_stay_in_place_across_converters(
    tmp_path: Path,
) -> None:
    """A copy for other converters (Matroska) would lose an order of their own: left and right
    would swap. The tone is in the first channel, which the MOV says is the right one; where it
    lands is where a conversion in one place puts it (ffmpeg 5.1 reads no such order at all)."""
    video = tmp_path / "right.mov"
    subprocess.run([MAKER, "-v", "error", "-f", "lavfi", "-i", "sine=f=300:d=30:r=48000",
                    "-af", "pan=FR+FL|c0=c0|c1=0*c0", "-c:a", "pcm_s16le", str(video)],
                   check=True)  # fmt: skip

    def levels(harness: Harness) -> list[bool]:
        event = harness.convert(video.read_bytes(), "right.mov")
        for task in [e for e in harness.bus.published if isinstance(e.data, SegmentRequested)]:
            SegmentEncoder(harness.blobs, harness.bus, harness.converter.transcoder).handle(task)
        rms = np.sqrt(np.mean(decoded(harness.mp3(harness.bus.published[-1], tmp_path)) ** 2,
                              axis=1))  # fmt: skip
        assert event is not None
        assert min(rms) < max(rms) / 100  # the tone in one channel only
        return [bool(level == max(rms)) for level in rms]

    spread = Harness(tmp_path / "spread", fan_out_after=20)
    spread.bus.consumers = lambda _queue: 3  # type: ignore[method-assign]
    assert levels(spread) == levels(Harness(tmp_path / "here")) in ([False, True], [True, False])
