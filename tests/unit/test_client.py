"""The client's parts on their own: its config file, atomic downloads, option flags, reporters."""

from __future__ import annotations

import argparse
import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from video2mp3.client import config
from video2mp3.client.api import Api, disposition_name, safe_name
from video2mp3.client.convert import add_option_flags, chosen_options
from video2mp3.client.errors import ClientError
from video2mp3.client.progress import JsonLines, Lines
from video2mp3.domain.options import describe


def test_the_config_is_private_and_replaced_whole(tmp_path: Path) -> None:
    path = config.config_file({"XDG_CONFIG_HOME": str(tmp_path)})
    assert path == tmp_path / "video2mp3" / "config.json"
    assert config.load(path) == config.Config()  # none yet: the defaults
    config.save(path, config.Config("https://v2m.example", "t1"))
    config.save(path, config.Config("https://v2m.example", "t2"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load(path) == config.Config("https://v2m.example", "t2")
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left
    path.write_text("{not json")
    assert config.load(path) == config.Config()


def test_the_server_flag_wins_over_the_environment_over_the_stored_one() -> None:
    stored = config.Config("http://stored:1/")
    assert config.server_of(stored, None, {}) == "http://stored:1"
    assert config.server_of(stored, None, {"VIDEO2MP3_SERVER": "http://env:2"}) == "http://env:2"
    assert config.server_of(stored, "http://flag:3", {"VIDEO2MP3_SERVER": "x"}) == "http://flag:3"


def _mp3_server(chunks: list[bytes], name: str = "song.mp3") -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
            content=iter(chunks),
        )

    return httpx.MockTransport(handle)


@pytest.fixture
def api() -> Iterator[Api]:
    client = Api("http://v2m.test", "token")
    yield client
    client.close()


def test_a_download_appears_whole_and_never_overwrites_without_force(
    api: Api, tmp_path: Path
) -> None:
    api.http._transport = _mp3_server([b"ID3", b"frames"])
    saved = api.download("j1", tmp_path, force=False)
    assert saved == tmp_path / "song.mp3"
    assert saved.read_bytes() == b"ID3frames"
    with pytest.raises(ClientError) as refused:
        api.download("j1", tmp_path, force=False)
    assert refused.value.code == "exists"
    api.http._transport = _mp3_server([b"new"])
    api.download("j1", tmp_path, force=True)
    assert saved.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["song.mp3"]


def test_an_interrupted_download_leaves_nothing(api: Api, tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"first half"
        api.stop.set()  # Ctrl-C arrives mid-download
        yield b"second half"

    api.http._transport = httpx.MockTransport(lambda request: httpx.Response(200, content=chunks()))
    with pytest.raises(ClientError) as cancelled:
        api.download("j1", tmp_path, force=True)
    assert cancelled.value.code == "cancelled"
    assert list(tmp_path.iterdir()) == []


def test_server_names_stay_inside_the_target_folder() -> None:
    evil = httpx.Headers({"Content-Disposition": 'attachment; filename="../../.bashrc"'})

    assert safe_name(disposition_name(evil)) == "bashrc"
    utf8 = httpx.Headers({"Content-Disposition": "attachment; filename*=UTF-8''%C3%A9t%C3%A9.mp3"})
    assert disposition_name(utf8) == "été.mp3"


def test_errors_carry_the_servers_code_and_an_expired_token_says_log_in(api: Api) -> None:
    api.http._transport = httpx.MockTransport(
        lambda request: httpx.Response(
            401, json={"error": {"code": "unauthorized", "message": "token expired"}}
        )
    )
    with pytest.raises(ClientError) as failed:
        api.jobs()
    assert failed.value.code == "unauthorized"
    assert "log in again" in failed.value.message


def test_every_option_of_the_description_is_a_flag() -> None:
    parser = argparse.ArgumentParser()
    add_option_flags(parser)
    flags = {a.dest.removeprefix("option_") for a in parser._actions if a.dest != "help"}
    assert flags == set(describe()["properties"])
    args = parser.parse_args(["--sample-rate", "44100", "--no-chapters", "--start", "1:30"])
    assert chosen_options(args, parser) == {
        "sample_rate": "44100",
        "chapters": "false",
        "start": "1:30",
    }
    with pytest.raises(SystemExit) as usage:
        chosen_options(parser.parse_args(["--quality", "2", "--bitrate", "128"]), parser)
    assert usage.value.code == 2


def test_lines_and_json_say_each_change_once_and_failures_go_to_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    lines = Lines(out, err)
    lines.uploading("a.mp4", 0, 10)
    lines.uploading("a.mp4", 10, 10)
    lines.queued("a.mp4", "j1")
    for progress in (0.0, 0.5):
        lines.converting("a.mp4", "processing", progress)
    lines.failed("a.mp4", "no_audio", "the file has no audio")
    assert out.getvalue().splitlines() == [
        "a.mp4: uploading 10 bytes",
        "a.mp4: queued as job j1",
        "a.mp4: processing",
    ]
    assert err.getvalue() == "a.mp4: no_audio: the file has no audio\n"

    out, err = io.StringIO(), io.StringIO()
    jsonl = JsonLines(out, err)
    jsonl.queued("a.mp4", "j1")
    jsonl.converting("a.mp4", "queued", 0.0)
    jsonl.converting("a.mp4", "processing", 0.2)
    jsonl.saved("a.mp4", "a.mp3", {"id": "j1", "mp3_size": 5})
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["queued", "processing", "saved"]
    assert events[-1] == {
        "event": "saved",
        "file": "a.mp4",
        "path": "a.mp3",
        "job_id": "j1",
        "size": 5,
    }


def test_a_download_creates_its_folder_and_its_parents(api: Api, tmp_path: Path) -> None:
    api.http._transport = _mp3_server([b"ID3"])
    folder = tmp_path / "music" / "2026" / "march"
    assert api.download("j1", folder, force=False) == folder / "song.mp3"
    assert [p.name for p in folder.iterdir()] == ["song.mp3"]
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(ClientError) as refused:
        api.download("j1", tmp_path / "a-file" / "below", force=False)
    assert refused.value.code == "no_folder"
    assert "a-file" in refused.value.message


def test_lines_and_json_say_when_a_file_waits_and_why_once() -> None:
    full = "you have 2 jobs waiting or converting, the most allowed"
    out, err = io.StringIO(), io.StringIO()
    lines = Lines(out, err)
    lines.uploading("a.mp4", 0, 10)
    lines.waiting("a.mp4", "too_many_jobs", full, 10)
    lines.uploading("a.mp4", 0, 10)  # tried again: still waiting, nothing new to say
    lines.waiting("a.mp4", "too_many_jobs", full, 10)
    lines.waiting("a.mp4", "unavailable", "the server is busy", 3)
    lines.uploading("a.mp4", 0, 10)
    lines.queued("a.mp4", "j1")
    assert out.getvalue().splitlines() == [
        "a.mp4: uploading 10 bytes",
        f"a.mp4: waiting: {full} (too_many_jobs); trying again within 10 s",
        "a.mp4: waiting: the server is busy (unavailable); trying again within 3 s",
        "a.mp4: queued as job j1",
    ]
    assert err.getvalue() == ""

    out, err = io.StringIO(), io.StringIO()
    jsonl = JsonLines(out, err)
    jsonl.uploading("a.mp4", 0, 10)
    jsonl.waiting("a.mp4", "too_many_jobs", full, 9.5)
    jsonl.uploading("a.mp4", 0, 10)
    jsonl.waiting("a.mp4", "too_many_jobs", full, 9.5)
    jsonl.queued("a.mp4", "j1")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["uploading", "waiting", "queued"]
    assert events[1] == {
        "event": "waiting",
        "file": "a.mp4",
        "code": "too_many_jobs",
        "message": full,
        "retry_in": 9.5,
    }
