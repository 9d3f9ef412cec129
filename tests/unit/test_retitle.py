"""A cached MP3 copied for another owner: titled from their file name where the first owner's
file name titled it, every other frame kept, and nothing copied from a tag written otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from mutagen.id3 import ID3, TIT2

from video2mp3.adapters.blobs.local import LocalBlobStore
from video2mp3.converter.tags import Tags, write_tags
from video2mp3.domain.jobs import Job
from video2mp3.domain.options import ConversionOptions
from video2mp3.gateway.retitle import copy_for

AUDIO = bytes(range(256)) * 8


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def stored(blobs: LocalBlobStore, tmp_path: Path, tags: Tags, filename: str, **options: str) -> Job:
    path = tmp_path / "source.mp3"
    path.write_bytes(AUDIO)
    write_tags(path, tags)
    blob = blobs.put(iter([path.read_bytes()]), filename="x.mp3", content_type="audio/mpeg")
    return job(filename, mp3_fid=blob.id, **options)


def job(filename: str, mp3_fid: str | None = None, **options: str) -> Job:
    chosen = ConversionOptions.parse(options)
    return Job(owner_id=1, owner_email="a@x", filename=filename, options=chosen, mp3_fid=mp3_fid)


def read(blobs: LocalBlobStore, fid: str) -> tuple[ID3, bytes]:
    with blobs.open(fid) as reader:
        data = reader.read()
    return ID3(io.BytesIO(data)), data


def test_a_title_from_the_file_name_is_the_new_owners(
    blobs: LocalBlobStore, tmp_path: Path
) -> None:
    source = stored(blobs, tmp_path, Tags("Ann trip", "Band", "Album", "2024"), "Ann trip.mp4")
    copy = copy_for(blobs, source, job("dir/Mallory.mov"))
    assert copy is not None
    tag, data = read(blobs, copy.id)
    assert [str(tag[name]) for name in ("TIT2", "TPE1", "TALB", "TDRC")] == [
        "Mallory",
        "Band",
        "Album",
        "2024",
    ]
    assert data.endswith(AUDIO)
    assert copy.size == len(data)


@pytest.mark.parametrize(
    ("tags", "options"),
    [(Tags("Chosen"), {"title": "Chosen"}), (Tags("The video's own title"), {})],
)
def test_a_title_from_the_options_or_the_video_is_kept(
    blobs: LocalBlobStore, tmp_path: Path, tags: Tags, options: dict[str, str]
) -> None:
    source = stored(blobs, tmp_path, tags, "Ann.mp4", **options)
    copy = copy_for(blobs, source, job("Mallory.mp4", **options))
    assert copy is not None
    assert str(read(blobs, copy.id)[0]["TIT2"]) == tags.title


def test_an_older_tag_is_retitled_and_a_missing_tag_or_mp3_is_not_copied(
    blobs: LocalBlobStore, tmp_path: Path
) -> None:
    path = tmp_path / "v23.mp3"
    path.write_bytes(AUDIO)
    tag = ID3()
    tag.add(TIT2(encoding=3, text=["Ann"]))
    tag.save(path, v2_version=3)
    blob = blobs.put(iter([path.read_bytes()]), filename="x.mp3", content_type="audio/mpeg")
    copy = copy_for(blobs, job("Ann.mp4", mp3_fid=blob.id), job("Mallory.mp4"))
    assert copy is not None
    tagged, data = read(blobs, copy.id)
    assert (str(tagged["TIT2"]), tagged.version[:2]) == ("Mallory", (2, 4))
    assert data.endswith(AUDIO)
    bare = blobs.put(iter([AUDIO]), filename="x.mp3", content_type="audio/mpeg")
    assert copy_for(blobs, job("Ann.mp4", mp3_fid=bare.id), job("Mallory.mp4")) is None
    assert copy_for(blobs, job("Ann.mp4", mp3_fid="gone"), job("Mallory.mp4")) is None
