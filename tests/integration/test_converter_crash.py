"""A converter killed between storing its MP3 and publishing the news leaves one MP3, not two.

The converter runs in a process of its own on real ffmpeg and GridFS; its bus SIGKILLs the
process the moment it is handed ``conversion.succeeded``, after the MP3 is stored. The request
is then handled again, as the broker would redeliver it, and GridFS holds exactly one MP3.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

from video2mp3.adapters.blobs.gridfs import GridFSBlobStore
from video2mp3.converter.exchange import mp3_blob_id
from video2mp3.domain.events import ConversionRequested, ConversionSucceeded, Event, Owner

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)

CONVERTER = """
import os, signal, sys
from tests.support import FFMPEG
from video2mp3.adapters.blobs.gridfs import GridFSBlobStore
from video2mp3.adapters.bus.inprocess import InProcessBus
from video2mp3.converter.media import Transcoder
from video2mp3.converter.worker import Converter
from video2mp3.domain.events import ConversionSucceeded, Event

class Bus(InProcessBus):
    def publish(self, event, *, transient=False):
        if isinstance(event.data, ConversionSucceeded):
            if sys.argv[3] == "crash":
                os.kill(os.getpid(), signal.SIGKILL)
            print(event.to_json().decode(), flush=True)

transcoder = Transcoder(FFMPEG, timeout=60, max_seconds=3600)
converter = Converter(GridFSBlobStore(sys.argv[1]), Bus(), transcoder)
converter.handle(Event.from_json(sys.argv[2]))
"""


def convert(mongodb_url: str, request: Event, mode: str, out: Path) -> tuple[int, str]:
    """Run the converter process; its exit status and output. In a session of its own, so
    that the helper processes it started, orphaned by a SIGKILL, are ended with it."""
    with (out / f"{mode}.log").open("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", CONVERTER, mongodb_url, request.to_json().decode(), mode],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            status = proc.wait(120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        log.seek(0)
        return status, log.read()


def test_a_converter_killed_before_publishing_leaves_one_mp3(
    mongodb_url: str, samples: dict[str, Path], tmp_path: Path
) -> None:
    blobs = GridFSBlobStore(mongodb_url)
    video = blobs.put(
        iter([samples["h264_aac.mp4"].read_bytes()]), filename="a.mp4", content_type="video/mp4"
    )
    request = Event("job-crash", ConversionRequested(video.id, Owner(1, "a@x"), "crash.mp4"))

    def mp3s() -> list[str]:
        client: pymongo.MongoClient = pymongo.MongoClient(mongodb_url)
        files = client.get_default_database()["fs.files"].find({"filename": "crash.mp3"})
        found = [str(f["_id"]) for f in files]
        client.close()
        return found

    status, output = convert(mongodb_url, request, "crash", tmp_path)
    assert status == -9, output
    assert mp3s() == [mp3_blob_id("job-crash")]  # stored, never told

    status, output = convert(mongodb_url, request, "normal", tmp_path)
    assert status == 0, output
    told = Event.from_json(output.strip().splitlines()[-1])
    assert isinstance(told.data, ConversionSucceeded)
    assert mp3s() == [told.data.mp3_fid]
    with blobs.open(told.data.mp3_fid) as mp3:
        assert mp3.read(3) == b"ID3"
    blobs.close()
