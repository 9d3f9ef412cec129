"""Streaming multipart uploads through the upload use case: the file goes to the blob store,
options come from the fields before it, limits hold, nothing leaks."""

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.domain.events import ConversionFailed, ConversionRequested, Event
from video2mp3.domain.jobs import Job
from video2mp3.domain.options import ConversionOptions
from video2mp3.domain.storage import Limits
from video2mp3.errors import InvalidRequest, TooLarge
from video2mp3.gateway.multipart import MultipartForm
from video2mp3.gateway.service import Gateway, clean_filename
from video2mp3.gateway.tokens import Principal
from video2mp3.signing import DownloadLinks, Secret, SecretRing

BOUNDARY = "xYzBoundary"


def multipart(*parts: tuple[str, str | None, bytes]) -> io.BytesIO:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            body += b"Content-Type: video/mp4\r\n"
        body += b"\r\n" + data + b"\r\n"
    return io.BytesIO(body + f"--{BOUNDARY}--\r\n".encode())


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def stored(blobs: LocalBlobStore) -> list[Path]:
    return [p for p in blobs.root.iterdir() if p.is_file()]


class RecordingJobs:
    """Just enough of the jobs repository for the upload use case."""

    def __init__(self) -> None:
        self.added: list[tuple[Job, Event]] = []

    def add(self, job: Job, event: Event) -> None:
        self.added.append((job, event))

    def add_from_cache(self, job: Job, correlation_id: str | None, limits: Limits) -> bool:
        return False

    def reserve(
        self, job_id: str, owner_id: int, limits: Limits, *, at_least: int, wanted: int
    ) -> int:
        return limits.admit(0, 0, at_least, wanted, new_job=True)

    def release(self, job_id: str) -> None:
        pass


Upload = Callable[..., Job]


@pytest.fixture
def store_upload(blobs: LocalBlobStore) -> Upload:
    """What the HTTP view does: the fields before the file are the options, then the file."""

    def upload(body: IO[bytes], boundary: str, store: LocalBlobStore, max_bytes: int) -> Job:
        form = MultipartForm(body, boundary)
        fields = form.read_fields()
        if form.filename is None:
            raise InvalidRequest("no file")
        links = DownloadLinks(SecretRing([Secret("k", bytes(32))]), 60)
        service = Gateway(RecordingJobs(), store, max_bytes, links)  # type: ignore[arg-type]
        owner = Principal(1, "a@example.com")
        options = ConversionOptions.parse(fields)
        return service.upload(owner, form.filename, form.file_chunks(), options)

    return upload


def test_file_and_fields_are_read(blobs: LocalBlobStore, store_upload: Upload) -> None:
    video = bytes(range(256)) * 4000  # 1 MB, larger than one read
    job = store_upload(
        multipart(("bitrate", None, b"128"), ("file", "clip.mp4", video)), BOUNDARY, blobs, 10**7
    )
    assert job.options == ConversionOptions(bitrate=128)
    assert job.filename == "clip.mp4"
    assert job.video_fid is not None
    with blobs.open(job.video_fid) as reader:
        assert reader.read() == video


def test_a_field_after_the_file_is_refused_and_nothing_kept(
    blobs: LocalBlobStore, store_upload: Upload
) -> None:
    body = multipart(("file", "a.mp4", b"a" * 10), ("bitrate", None, b"128"))
    with pytest.raises(InvalidRequest, match="before the file"):
        store_upload(body, BOUNDARY, blobs, 10**6)
    assert stored(blobs) == []


def test_an_empty_file_is_refused_and_nothing_kept(
    blobs: LocalBlobStore, store_upload: Upload
) -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        store_upload(multipart(("file", "a.mp4", b"")), BOUNDARY, blobs, 10**6)
    assert stored(blobs) == []


def test_too_large_keeps_nothing(blobs: LocalBlobStore, store_upload: Upload) -> None:
    with pytest.raises(TooLarge):
        store_upload(multipart(("file", "a.mp4", b"x" * 5000)), BOUNDARY, blobs, 4096)
    assert stored(blobs) == []
    assert list((blobs.root / ".partial").iterdir()) == []


def test_two_files_are_refused_and_nothing_kept(
    blobs: LocalBlobStore, store_upload: Upload
) -> None:
    body = multipart(("file", "a.mp4", b"a" * 10), ("other", "b.mp4", b"b" * 10))
    with pytest.raises(InvalidRequest, match="one file"):
        store_upload(body, BOUNDARY, blobs, 10**6)
    assert stored(blobs) == []


def test_truncated_body_is_refused_and_nothing_kept(
    blobs: LocalBlobStore, store_upload: Upload
) -> None:
    body = multipart(("file", "a.mp4", b"a" * 100_000)).getvalue()[:50_000]
    with pytest.raises(InvalidRequest):
        store_upload(io.BytesIO(body), BOUNDARY, blobs, 10**6)
    assert stored(blobs) == []


def test_a_body_without_boundaries_is_refused_without_buffering_it(
    blobs: LocalBlobStore, store_upload: Upload
) -> None:
    class Endless(io.RawIOBase):
        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            self.served += len(buffer)
            buffer[:] = b"x" * len(buffer)
            return len(buffer)

    body = Endless()
    with pytest.raises(InvalidRequest, match="no boundary"):
        store_upload(io.BufferedReader(body), BOUNDARY, blobs, 10**9)
    assert body.served < 4 * 1024 * 1024  # refused after about a megabyte, not a gigabyte


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (multipart(*[(f"f{i}", None, b"1") for i in range(40)]), "segment count"),
        (multipart(("file", "a" * 5000 + ".mp4", b"x")), "header length"),
        (io.BytesIO(f"--{BOUNDARY}\r\nContent-Type: video/mp4\r\n\r\nx".encode()), "Disposition"),
        (io.BytesIO(f"--{BOUNDARY}\nContent-Disposition: form-data\n\nx".encode()), "line break"),
    ],
    ids=["41 parts", "a 5 KB header line", "no Content-Disposition", "LF line ends"],
)
def test_a_body_past_the_parser_limits_is_refused_and_nothing_kept(
    body: io.BytesIO, why: str, blobs: LocalBlobStore, store_upload: Upload
) -> None:
    with pytest.raises(InvalidRequest, match=why):
        store_upload(body, BOUNDARY, blobs, 10**6)
    assert stored(blobs) == []


def test_huge_form_field_is_refused(blobs: LocalBlobStore, store_upload: Upload) -> None:
    with pytest.raises(TooLarge):
        store_upload(multipart(("bitrate", None, b"1" * 10_000)), BOUNDARY, blobs, 10**6)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../x.mp4", "x.mp4"),
        ("C:\\a\\b.mov", "b.mov"),
        ("a\x00\nb.mp4", "a b.mp4"),
        ("a\u2028b\u2029c\u202e.mp4", "a b c.mp4"),
        ("evil\u202egpj.exe", "evilgpj.exe"),
        (None, "upload"),
    ],
)
def test_clean_filename(raw: str | None, clean: str) -> None:
    assert clean_filename(raw) == clean


class StreamingJobs(RecordingJobs):
    """Also what a job queued during its upload needs: its failure, its recorded upload."""

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[Event] = []
        self.recorded: list[Job] = []

    def apply(self, event: Event) -> tuple[Job | None, bool]:
        self.applied.append(event)
        return None, True

    def record_upload(self, job: Job) -> None:
        self.recorded.append(job)


MKV_HEAD = b"\x1a\x45\xdf\xa3" + bytes(4092)


def streaming_gateway(blobs: LocalBlobStore, jobs: StreamingJobs, max_bytes: int) -> Gateway:
    links = DownloadLinks(SecretRing([Secret("k", bytes(32))]), 60)
    return Gateway(jobs, blobs, max_bytes, links, stream_after_bytes=8192)  # type: ignore[arg-type]


def test_a_readable_upload_is_queued_while_it_arrives(blobs: LocalBlobStore) -> None:
    jobs = StreamingJobs()
    seen_queued: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            seen_queued.append(len(jobs.added))
            yield MKV_HEAD

    job = streaming_gateway(blobs, jobs, 10**6).upload(
        Principal(1, "a@x"), "a.mkv", chunks(), ConversionOptions()
    )
    assert seen_queued == [0, 0, 1, 1, 1, 1, 1, 1]  # queued once 8 KiB were stored
    ((queued, request),) = jobs.added
    assert queued is job
    assert isinstance(request.data, ConversionRequested)
    assert request.data.uploading
    assert request.data.video_fid == job.video_fid
    assert jobs.recorded == [job]
    assert (job.video_size, job.video_sha256) == (
        8 * 4096,
        hashlib.sha256(MKV_HEAD * 8).hexdigest(),
    )


def test_a_queued_upload_going_past_the_limit_fails_its_job(blobs: LocalBlobStore) -> None:
    jobs = StreamingJobs()
    with pytest.raises(TooLarge):
        streaming_gateway(blobs, jobs, 5 * 4096).upload(
            Principal(1, "a@x"), "a.mkv", iter([MKV_HEAD] * 8), ConversionOptions()
        )
    ((queued, _),) = jobs.added
    (failed,) = jobs.applied
    assert failed.job_id == queued.id
    assert isinstance(failed.data, ConversionFailed)
    assert failed.data.code == "upload_failed"
    assert "exceeds the limit" in failed.data.message
    assert stored(blobs) == []
    assert list((blobs.root / ".partial").iterdir()) == []
