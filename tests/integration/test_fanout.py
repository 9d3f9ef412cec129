"""One long input spread across two converters on the real RabbitMQ and a GridFS server.

Both converters run as ``bootstrap`` wires them (one segment consumer per core, one core each),
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

from tests.e2e.test_distributed import delete_topology
from tests.integration.test_segments import decoded
from tests.support import FFMPEG, wait_for
from video2mp3 import bootstrap
from video2mp3.adapters.blobs.gridfs import GridFSBlobStore
from video2mp3.adapters.bus.rabbitmq import RabbitMQBus
from video2mp3.converter.exchange import (
    audio_blob_id,
    blob_exists,
    mp3_blob_id,
    part_blob_id,
    tag_blob_id,
)
from video2mp3.converter.mp3 import frame_samples
from video2mp3.domain.events import (
    ConversionFailed,
    ConversionRequested,
    ConversionSucceeded,
    Event,
    Owner,
    SegmentRequested,
)
from video2mp3.domain.jobs import utcnow
from video2mp3.ports.blobs import BlobInfo
from video2mp3.ports.bus import GiveUp, Handler
from video2mp3.settings import load

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

    def __init__(self, url: str, database: str, dies_on: str) -> None:
        super().__init__(url, database)
        self.dies_on, self.stored = dies_on, Counter[str]()

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


def test_a_long_input_is_encoded_by_both_converters_and_joined_gapless(
    amqp_url: str, mongodb_url: str, prefix: str, long_video: Path, tmp_path: Path
) -> None:
    settings = load(broker_url=amqp_url, broker_prefix=prefix, mongodb_url=mongodb_url,
                    converter_cores=1, fan_out_after_seconds=60)  # fmt: skip
    job = str(uuid.uuid4())
    blobs = DyingBlobs(mongodb_url, f"fanout_{uuid.uuid4().hex[:8]}", part_blob_id(job, 1))
    seen: list[tuple[str, Event]] = []
    stop = threading.Event()
    threads = []
    for name in ("a", "b"):
        worker = bootstrap.converter_worker(
            settings, blobs, WatchedBus(amqp_url, prefix, name, seen)
        )
        threads += [threading.Thread(target=loop, args=(stop,)) for loop in worker.loops.values()]
    results: list[Event] = []
    tracker = RabbitMQBus(amqp_url, prefix=prefix)
    threads.append(threading.Thread(target=tracker.consume, args=("gateway", results.append, stop)))
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: consumers(amqp_url, f"{prefix}.segments") == 2, 30, "both converters")
        video = blobs.put([long_video.read_bytes()], filename="long.mp4", content_type="video/mp4")
        request = ConversionRequested(video.id, Owner(1, "a@example.com"), "long.mp4")
        tracker.publish(Event(job, request))
        finished = wait_for(
            lambda: [
                e for e in results if isinstance(e.data, ConversionSucceeded | ConversionFailed)
            ],
            120,
            "the job to finish",
        )
        gone = [audio_blob_id(job), tag_blob_id(job), *(part_blob_id(job, k) for k in range(6))]
        wait_for(lambda: not any(blob_exists(blobs, b) for b in gone), 30, "parts to be deleted")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)

    succeeded = finished[0].data  # type: ignore[index]
    assert isinstance(succeeded, ConversionSucceeded), succeeded
    assert succeeded.mp3_fid == mp3_blob_id(job)
    later = utcnow() + timedelta(days=1)
    assert set(blobs.stored_before(later)) == {video.id, succeeded.mp3_fid}  # one MP3, no parts

    # Each segment encoded once, but the one whose converter died: only it was done again.
    assert {k: blobs.stored[part_blob_id(job, k)] for k in range(6)} == {
        k: 2 if k == 1 else 1 for k in range(6)
    }
    assert [e.type for _, e in seen].count("conversion.requested") == 1  # never the whole job
    tasks = [e.data for _, e in seen if isinstance(e.data, SegmentRequested)]
    assert {name for name, e in seen if isinstance(e.data, SegmentRequested)} == {"a", "b"}

    mp3 = tmp_path / "out.mp3"
    with blobs.open(succeeded.mp3_fid) as reader:
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
    assert succeeded.duration == pytest.approx(ours.shape[1] / RATE, abs=0.001)

    size = frame_samples(RATE)
    frames = expected.shape[1] // size
    error = (ours - expected)[:, : frames * size].reshape(2, frames, size)
    rms = np.sqrt((error**2).mean(axis=(0, 2)))
    near = sorted({b // size + d for b in tasks[0].bounds[1:-1] for d in (-1, 0, 1)})
    assert rms[near].max() <= np.delete(rms, near).max()


def consumers(amqp_url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.consumer_count)
