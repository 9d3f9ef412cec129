"""A converter wired to a local blob store and a bus that records what it publishes."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.support import FFMPEG
from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.adapters.bus.inprocess import InProcessBus
from video2mp3.converter.media import Transcoder
from video2mp3.converter.probing import Prober
from video2mp3.converter.worker import Converter
from video2mp3.domain.events import (
    ConversionProgress,
    ConversionRequested,
    ConversionSucceeded,
    Event,
    Owner,
)
from video2mp3.domain.options import ConversionOptions

# One sandbox child for every harness of the session, as a converter process has one.
PROBER = Prober(FFMPEG)


class Harness:
    """A converter wired to a local blob store and a bus whose published events we read."""

    def __init__(self, root: Path, prober: Prober = PROBER, **transcoder: int) -> None:
        self.blobs = LocalBlobStore(root / "blobs")
        self.bus = RecordingBus()
        options = {"timeout": 60, "max_seconds": 3600, **transcoder}
        transcoder = Transcoder(FFMPEG, prober=prober, **options)
        self.converter = Converter(self.blobs, self.bus, transcoder)

    def convert(
        self,
        data: bytes,
        filename: str,
        options: ConversionOptions | None = None,
        job_id: str | None = None,
    ) -> Event:
        """Convert ``data`` as job ``job_id`` (a new one by default: a job's MP3 id is derived
        from it, and a second conversion of one job keeps the first MP3)."""
        video = self.blobs.put(iter([data]), filename=filename, content_type="video/x")
        options = options or ConversionOptions()
        request = ConversionRequested(video.id, Owner(1, "a@example.com"), filename, options)
        job = job_id or str(uuid.uuid4())
        self.converter.handle(Event(job, request, correlation_id="c-1"))
        final = self.bus.published[-1]
        assert all(e.correlation_id == "c-1" for e in self.bus.published)
        assert isinstance(self.bus.published[0].data, ConversionProgress)
        return final

    def mp3(self, event: Event, folder: Path) -> Path:
        assert isinstance(event.data, ConversionSucceeded), event.data
        path = folder / "out.mp3"
        with self.blobs.open(event.data.mp3_fid) as reader:
            path.write_bytes(reader.read())
        assert path.stat().st_size == event.data.size
        return path


class RecordingBus(InProcessBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[Event] = []

    def publish(self, event: Event, *, transient: bool = False) -> None:
        self.published.append(event)
