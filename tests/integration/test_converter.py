"""The converter on real ffmpeg: every container and layout we promise, and hostile inputs.

Each MP3 is checked with libavformat (the library behind ffprobe): codec, channels, and a
duration within 0.1 s of the source audio.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Harness
from tests.support import FFMPEG, SAMPLES, Sample, decoded_seconds, inspect_audio, make_sample, tone
from video2mp3.converter.exchange import mp3_blob_id
from video2mp3.converter.facts import MediaInfo
from video2mp3.converter.media import Transcoder
from video2mp3.converter.source import Source
from video2mp3.domain.events import (
    ConversionFailed,
    ConversionProgress,
    ConversionRequested,
    ConversionSucceeded,
    Event,
    Owner,
)
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import ConversionTimeout, NotPublished, Unavailable

pytestmark = pytest.mark.media  # run again with the pinned ffmpeg (make test)

CONVERTIBLE = [name for name, s in SAMPLES.items() if s.audio_seconds]


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_converts_to_mp3_of_the_same_duration(
    name: str, samples: dict[str, Path], tmp_path: Path
) -> None:
    harness = Harness(tmp_path)
    event = harness.convert(samples[name].read_bytes(), name)
    facts = inspect_audio(harness.mp3(event, tmp_path))
    expected = SAMPLES[name].audio_seconds
    assert expected is not None
    assert (facts.format, facts.codec) == ("mp3", "mp3")
    assert facts.channels in (1, 2)
    assert abs(facts.duration - expected) <= 0.1, facts
    assert isinstance(event.data, ConversionSucceeded)
    assert abs(event.data.duration - expected) <= 0.1


def test_surround_is_downmixed_to_stereo(samples: dict[str, Path], tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    event = harness.convert(samples["surround_5_1.mkv"].read_bytes(), "s.mkv")
    assert inspect_audio(harness.mp3(event, tmp_path)).channels == 2


def fail(harness: Harness, data: bytes, name: str = "x.mp4") -> ConversionFailed:
    event = harness.convert(data, name)
    assert isinstance(event.data, ConversionFailed), event.data
    assert not event.data.retryable
    assert event.data.message
    return event.data


def test_no_audio_fails_with_a_stable_code(samples: dict[str, Path], tmp_path: Path) -> None:
    assert fail(Harness(tmp_path), samples["no_audio.mp4"].read_bytes()).code == "no_audio"


def test_random_bytes_are_invalid_media(tmp_path: Path) -> None:
    assert fail(Harness(tmp_path), os.urandom(200_000)).code == "invalid_media"


@pytest.mark.parametrize(
    ("name", "code"), [("h264_aac.mp4", "truncated"), ("moov_at_end.mp4", "invalid_media")]
)
def test_truncated_video_fails(
    samples: dict[str, Path], tmp_path: Path, name: str, code: str
) -> None:
    data = samples[name].read_bytes()
    assert fail(Harness(tmp_path), data[: len(data) // 3]).code == code


@pytest.mark.parametrize(
    "playlist",
    [
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:3.0,\nfile://{secret}\n#EXT-X-ENDLIST\n",
        "ffconcat version 1.0\nfile '{secret}'\n",
    ],
    ids=["hls", "concat"],
)
def test_a_playlist_posing_as_a_video_reads_no_local_file(
    playlist: str, samples: dict[str, Path], tmp_path: Path
) -> None:
    """The local file named is real audio: read, it would convert. The job fails instead, and
    the blob store holds nothing but the upload (no MP3 of the local file)."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(samples["h264_aac.mp4"].read_bytes())
    harness = Harness(tmp_path)
    assert fail(harness, playlist.format(secret=secret).encode(), "evil.mp4").code == (
        "invalid_media"
    )
    kept = [p for p in (tmp_path / "blobs").iterdir() if p.is_file()]
    assert len(kept) == 2  # the uploaded playlist and its metadata


def test_a_container_outside_the_whitelist_is_refused(media_dir: Path, tmp_path: Path) -> None:
    """AIFF is sound that ffmpeg reads well, but not a container we accept: the whitelist holds."""
    aiff = make_sample(Sample("tone.aiff", (*tone(), "-f", "aiff"), 3.0), media_dir)
    harness = Harness(tmp_path)
    assert fail(harness, aiff.read_bytes(), "tone.aiff").code == "invalid_media"


def test_a_missing_video_fails_without_retrying(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    request = ConversionRequested("f" * 32, Owner(1, "a@example.com"), "gone.mp4")
    harness.converter.handle(Event("job-1", request))
    final = harness.bus.published[-1].data
    assert isinstance(final, ConversionFailed)
    assert final.code == "video_missing"


def test_too_long_audio_is_refused(samples: dict[str, Path], tmp_path: Path) -> None:
    harness = Harness(tmp_path, max_seconds=2)
    assert fail(harness, samples["h264_aac.mp4"].read_bytes()).code == "too_long"


def test_a_conversion_past_the_timeout_is_killed(tmp_path: Path) -> None:
    harness = Harness(tmp_path, timeout=1)
    long_tone = tmp_path / "long.wav"
    import subprocess

    subprocess.run(
        [
            FFMPEG,
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=d=1200:r=48000",
            "-ac",
            "2",
            str(long_tone),
        ],
        check=True,
    )
    assert fail(harness, long_tone.read_bytes(), "long.wav").code == "timeout"


def test_giving_up_reports_the_job_failed(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    request = ConversionRequested("f" * 32, Owner(1, "a@example.com"), "a.mp4")
    harness.converter.give_up(Event("job-1", request), Unavailable("blob store: timed out"))
    failed = harness.bus.published[-1].data
    assert isinstance(failed, ConversionFailed)
    assert (failed.code, failed.retryable) == ("unavailable", True)
    assert "blob store: timed out" in failed.message


def test_a_retried_conversion_stores_one_mp3(samples: dict[str, Path], tmp_path: Path) -> None:
    """The first attempt stores its MP3 but cannot tell; the retry finds it under the job's id."""
    harness = Harness(tmp_path)
    publish = harness.bus.publish

    def refuse_success(event: Event, *, transient: bool = False) -> None:
        if isinstance(event.data, ConversionSucceeded):
            raise NotPublished("no queue is bound to conversion.succeeded")
        publish(event, transient=transient)

    harness.bus.publish = refuse_success  # type: ignore[method-assign]
    data = samples["h264_aac.mp4"].read_bytes()
    with pytest.raises(NotPublished):
        harness.convert(data, "a.mp4", job_id="job-1")
    harness.bus.publish = publish  # type: ignore[method-assign]
    done = harness.convert(data, "a.mp4", job_id="job-1")
    assert isinstance(done.data, ConversionSucceeded)
    assert done.data.mp3_fid == mp3_blob_id("job-1")
    mp3s = [p for p in (tmp_path / "blobs").glob("*.json") if '"audio/mpeg"' in p.read_text()]
    assert [p.stem for p in mp3s] == [done.data.mp3_fid]


def test_a_video_in_a_local_blob_store_is_read_where_it_lies(
    samples: dict[str, Path], tmp_path: Path
) -> None:
    harness = Harness(tmp_path)
    opened: list[str] = []
    open_blob = harness.blobs.open

    def counting_open(blob_id: str) -> Any:
        opened.append(blob_id)
        return open_blob(blob_id)

    harness.blobs.open = counting_open  # type: ignore[method-assign]
    event = harness.convert(samples["h264_aac.mp4"].read_bytes(), "a.mp4")
    assert isinstance(event.data, ConversionSucceeded)
    assert opened == []  # no copy: ffmpeg and the probe read the blob's own file


def test_the_reported_duration_is_the_mp3s_when_the_audio_starts_late(tmp_path: Path) -> None:
    """ffmpeg counts written time from where the audio starts in the source; the job must say
    how long the MP3 plays."""
    late = tmp_path / "late.mkv"
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=160x120:rate=5:d=20", "-itsoffset", "5", "-f", "lavfi", "-i",
         "anoisesrc=d=10:r=48000:a=0.2", "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
         "-preset", "ultrafast", "-c:a", "libvorbis", "-t", "20", str(late)],
        check=True,
    )  # fmt: skip
    harness = Harness(tmp_path)
    event = harness.convert(late.read_bytes(), "late.mkv")
    assert isinstance(event.data, ConversionSucceeded), event.data
    played = decoded_seconds(harness.mp3(event, tmp_path))
    assert played == pytest.approx(10.0, abs=0.05)
    assert event.data.duration == pytest.approx(played, abs=0.001)


def test_a_broker_outage_while_publishing_is_retried_without_converting_again(
    samples: dict[str, Path], tmp_path: Path
) -> None:
    harness = Harness(tmp_path)
    outage = [Unavailable("broker: connection refused")] * 2

    def flaky(event: Event, *, transient: bool = False) -> None:
        if isinstance(event.data, ConversionSucceeded) and outage:
            raise outage.pop()
        harness.bus.published.append(event)

    harness.bus.publish = flaky  # type: ignore[method-assign]
    video = harness.blobs.put(
        iter([samples["h264_aac.mp4"].read_bytes()]), filename="a.mp4", content_type="video/x"
    )
    request = Event("job-1", ConversionRequested(video.id, Owner(1, "a@example.com"), "a.mp4"))
    for _ in range(2):  # what the bus does while the broker is away: the handler again, in place
        with pytest.raises(Unavailable):
            harness.converter.handle(request)
    harness.converter.handle(request)
    [done] = [e.data for e in harness.bus.published if isinstance(e.data, ConversionSucceeded)]
    assert len([e for e in harness.bus.published if e.data == ConversionProgress(0.0)]) == 1
    stored = {p.name.split(".")[0] for p in (tmp_path / "blobs").iterdir() if p.is_file()}
    assert stored == {video.id, done.mp3_fid}  # one MP3, the one announced


class Held(Source):
    """A file whose last bytes arrive only on ``release``, as from a slow client's upload."""

    def __init__(self, path: Path, data: bytes, held: int) -> None:
        path.write_bytes(data[:-held])
        self.path = path
        self.whole = threading.Event()
        self._rest = data[-held:]

    def release(self) -> None:
        with self.path.open("ab") as out:
            out.write(self._rest)
        self.arrived()


def arriving(tmp_path: Path, seconds: int, transcoder: Transcoder) -> tuple[Held, MediaInfo]:
    """A video of ``seconds`` of audio, two thirds of it arrived, and its facts."""
    video = tmp_path / "video.mkv"
    subprocess.run([transcoder.ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i",
                    f"sine=d={seconds}", "-c:a", "aac", str(video)], check=True)  # fmt: skip
    transcoder.start()
    info = transcoder.probe(video)
    data = video.read_bytes()
    return Held(tmp_path / "arriving.mkv", data, len(data) // 3), info


@pytest.mark.parametrize(("seconds", "cores"), [(20, 1), (70, 2)])  # one pass; two segments
def test_an_upload_slower_than_the_timeout_is_converted_whole(
    tmp_path: Path, seconds: int, cores: int
) -> None:
    # The conversion's time counts from when its input is whole (up to a timeout later).
    transcoder = Transcoder(FFMPEG, timeout=6, max_seconds=3600, cores=cores,
                            segment_after=60)  # fmt: skip
    src, info = arriving(tmp_path, seconds, transcoder)
    late = threading.Timer(7.5, src.release)  # past the timeout, well within twice it
    late.start()
    try:
        written = transcoder.convert(src, tmp_path / "out.mp3", info, ConversionOptions(),
                                     lambda _: None)  # fmt: skip
    finally:
        late.cancel()
        transcoder.close()
    assert written == pytest.approx(seconds, abs=0.1)
    assert decoded_seconds(tmp_path / "out.mp3") == pytest.approx(seconds, abs=0.1)


def test_an_upload_that_trickles_ends_its_conversion_after_twice_the_timeout(
    tmp_path: Path,
) -> None:
    transcoder = Transcoder(FFMPEG, timeout=1, max_seconds=3600)
    src, info = arriving(tmp_path, 20, transcoder)
    started = time.monotonic()
    try:
        with pytest.raises(ConversionTimeout):
            transcoder.convert(src, tmp_path / "out.mp3", info, ConversionOptions(),
                               lambda _: None)  # fmt: skip
        assert 1.5 <= time.monotonic() - started < 6  # about 2 s: not one timeout, nor for ever
    finally:
        src.release()
        transcoder.close()
