"""The ``video2mp3`` client commands as a user runs them: against ``video2mp3 dev`` and against
the distributed processes, through a pipe, under a real pseudo-terminal and with ``--json``; the
same conversions are told to the user's webhook, a real HTTP receiver."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook as Verifier

from tests.contract.test_mail import Inbox
from tests.e2e.flow import fill_up, sign_up
from tests.e2e.test_distributed import Services, system  # noqa: F401 - a fixture
from tests.support import (
    LONG,
    SAMPLES,
    Receiver,
    dev_stack,
    free_port,
    inspect_audio,
    make_sample,
    wait_for,
)

VIDEOS = ("h264_aac.mp4", "vp9_opus.webm")
BAR = "━"  # what rich draws its bars with


class Cli:
    """Runs ``video2mp3`` with its own config directory, as a separate process."""

    def __init__(self, home: Path, server: str) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO2MP3_")}
        self.env = {**clean, "XDG_CONFIG_HOME": str(home), "VIDEO2MP3_SERVER": server}
        self.home = home

    def __call__(
        self, *args: str, stdin: str = "", cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "video2mp3.cli", *args],
            input=stdin,
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=240,
        )

    def in_terminal(self, *args: str, cwd: Path) -> tuple[int, str]:
        """Run under a pseudo-terminal (stdout, stderr and stdin on it); its exit code and
        everything it wrote."""
        controller, terminal = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", *args],
            env={**self.env, "TERM": "xterm-256color", "COLUMNS": "120"},
            cwd=cwd,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
        )
        os.close(terminal)
        output = b""
        while True:
            ready, _, _ = select.select([controller], [], [], 240)
            assert ready, "the command wrote nothing for 240 s"
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end closed: the command ended
                break
            if not chunk:
                break
            output += chunk
        os.close(controller)
        return proc.wait(30), output.decode(errors="replace")


def log_in(cli: Cli, base: str, address: str) -> None:
    sign_up(base, address)
    result = cli("login", "--email", address, "--password-stdin", stdin="pw-123456\n")
    assert result.returncode == 0, result.stderr
    config = cli.home / "video2mp3" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["server"] == base


def three_files(samples: dict[str, Path], folder: Path) -> list[Path]:
    folder.mkdir()
    files = [folder / name for name in VIDEOS]
    for path in files:
        path.write_bytes(samples[path.name].read_bytes())
    (folder / "notes.txt").write_bytes(os.urandom(20_000))
    return [*files, folder / "notes.txt"]


def subscribe(cli: Cli, base: str, receiver: Receiver) -> str:
    """Register the receiver as the logged-in user's webhook; its secret."""
    token = json.loads((cli.home / "video2mp3" / "config.json").read_text())["token"]
    created = requests.post(
        f"{base}/api/v1/webhooks",
        headers={"Authorization": f"Bearer {token}"},
        json={"url": receiver.url},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["secret"])


def check_deliveries(receiver: Receiver, secret: str) -> None:
    """One signed delivery per converted file: two succeeded, the text file failed."""
    wait_for(lambda: len(receiver.requests) >= 3, 30, "three webhook deliveries")
    delivered = [Verifier(secret).verify(body, headers) for headers, body in receiver.requests]
    outcomes = sorted((d["data"]["filename"], d["type"]) for d in delivered)
    assert outcomes == [
        ("h264_aac.mp4", "job.succeeded"),
        ("notes.txt", "job.failed"),
        ("vp9_opus.webm", "job.succeeded"),
    ]
    [failed] = [d["data"] for d in delivered if d["type"] == "job.failed"]
    assert failed["error"]["code"] == "invalid_media"


def convert_three(cli: Cli, samples: dict[str, Path], tmp: Path) -> Path:
    """Three files, one not a video: exit 1, one failure line, two MP3s that play."""
    files = three_files(samples, tmp / "in")
    out = tmp / "out"
    out.mkdir()
    result = cli("convert", "-o", str(out), *map(str, files))
    assert result.returncode == 1, result.stderr
    [failure] = result.stderr.splitlines()
    assert failure.startswith(f"{files[2]}: invalid_media: "), failure
    assert BAR not in result.stdout
    assert "\r" not in result.stdout
    for name in VIDEOS:
        mp3 = out / name.replace(".mp4", ".mp3").replace(".webm", ".mp3")
        assert f"{tmp / 'in' / name}: saved {mp3}" in result.stdout.splitlines()
        audio = inspect_audio(mp3)
        assert audio.codec == "mp3"
        assert abs(audio.duration - SAMPLES[name].audio_seconds) <= 0.1  # type: ignore[operator]
    assert sorted(p.name for p in out.iterdir()) == ["h264_aac.mp3", "vp9_opus.mp3"]
    return out


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[str]:
    settings = {"VIDEO2MP3_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
    with dev_stack(tmp_path / "var", tmp_path / "dev.log", **settings) as base:
        yield base


def test_the_client_against_the_embedded_stack(
    dev_server: str,
    samples: dict[str, Path],
    media_dir: Path,
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    long_audio = make_sample(LONG, media_dir)
    cli = Cli(tmp_path / "config", dev_server)
    log_in(cli, dev_server, "cli@example.com")
    secret = subscribe(cli, dev_server, receiver)
    out = convert_three(cli, samples, tmp_path)
    check_deliveries(receiver, secret)

    # Nothing is overwritten without --force, and nothing is uploaded for it.
    def jobs() -> list[tuple[str, str]]:  # signed links are made anew on each listing
        return [
            (j["id"], j["status"])
            for j in map(json.loads, cli("jobs", "--json").stdout.splitlines())
        ]

    before = jobs()
    again = cli("convert", "-o", str(out), str(tmp_path / "in" / "h264_aac.mp4"))
    assert again.returncode == 1
    assert again.stderr.startswith(f"{tmp_path / 'in' / 'h264_aac.mp4'}: exists: ")
    assert jobs() == before

    # --json: one object per line, ending with the saved file.
    result = cli(
        "convert",
        "--json",
        "--force",
        "--bitrate",
        "64",
        "-o",
        str(out),
        str(tmp_path / "in" / "h264_aac.mp4"),
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events][:2] == ["uploading", "queued"]
    assert events[-1]["event"] == "saved"
    assert events[-1]["path"] == str(out / "h264_aac.mp3")
    latest = json.loads(cli("jobs", "--json").stdout.splitlines()[0])
    assert (latest["id"], latest["options"]) == (events[1]["job_id"], {"bitrate": 64})

    # A real terminal gets bars.
    code, screen = cli.in_terminal("convert", "--force", "h264_aac.mp4", cwd=tmp_path / "in")
    assert code == 0, screen
    assert BAR in screen
    assert "100%" in screen

    # jobs, newest first; get; rm.
    jobs = [json.loads(line) for line in cli("jobs", "--json").stdout.splitlines()]
    assert len(jobs) == 5
    assert [j["created_at"] for j in jobs] == sorted((j["created_at"] for j in jobs), reverse=True)
    table = cli("jobs").stdout
    assert all(j["id"] in table for j in jobs)
    assert "invalid_media" in table
    newest = jobs[0]["id"]
    fetched = cli("get", newest, "-o", str(tmp_path))
    assert fetched.returncode == 0, fetched.stderr
    assert inspect_audio(tmp_path / "h264_aac.mp3").codec == "mp3"
    assert cli("get", newest, "-o", str(tmp_path)).returncode == 1  # exists, no --force
    assert cli("rm", newest).returncode == 0
    gone = cli("get", newest, "-o", str(tmp_path), "--force")
    assert (gone.returncode, gone.stderr.strip()) == (
        1,
        "video2mp3: no such MP3 (the job may not have finished yet) (not_found)",
    )

    # Usage errors exit 2; a missing file, a dead server or a bad token say so in one line.
    assert cli("convert", "--bitrate", "100", "x.mp4").returncode == 2
    assert cli("convert", "--jobs", "0", "x.mp4").returncode == 2
    missing = cli("convert", str(tmp_path / "nope.mp4"))
    assert (missing.returncode, missing.stderr) == (
        1,
        f"{tmp_path / 'nope.mp4'}: no_file: no such file\n",
    )
    dead = cli("jobs", "--server", f"http://127.0.0.1:{free_port()}")
    assert dead.returncode == 1
    assert "cannot reach" in dead.stderr
    assert "Traceback" not in dead.stderr
    config = tmp_path / "config" / "video2mp3" / "config.json"
    token = json.loads(config.read_text())["token"]
    config.write_text(json.dumps({"server": dev_server, "token": "expired.or.forged"}))
    expired = cli("jobs")
    assert expired.returncode == 1
    assert "log in again" in expired.stderr
    config.write_text(json.dumps({"server": dev_server, "token": token}))

    # Ctrl-C mid-way: exit 130, nothing left behind.
    folder = tmp_path / "interrupted"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "video2mp3.cli", "convert", "-o", str(folder), str(long_audio)],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    while "queued as job" not in (line := proc.stdout.readline()):
        assert line, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert list(folder.iterdir()) == []
    assert cli("logout").returncode == 0
    assert "not logged in" in cli("jobs").stderr


def test_the_client_against_the_distributed_system(
    system: tuple[Services, Inbox],  # noqa: F811 - the fixture imported above
    samples: dict[str, Path],
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    services, _ = system
    services.start("converter-1", "converter")
    services.wait_ready()
    base = f"http://127.0.0.1:{services.ports['gateway']}"
    cli = Cli(tmp_path / "config", base)
    log_in(cli, base, "cli@example.com")
    secret = subscribe(cli, base, receiver)
    convert_three(cli, samples, tmp_path)
    check_deliveries(receiver, secret)


def test_convert_and_get_create_their_folder_and_its_parents(
    dev_server: str, samples: dict[str, Path], tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "config", dev_server)
    log_in(cli, dev_server, "folders@example.com")
    video = samples["h264_aac.mp4"]
    converted = tmp_path / "out" / "2026" / "march"
    result = cli("convert", "-o", str(converted), str(video))
    assert result.returncode == 0, result.stderr
    assert inspect_audio(converted / "h264_aac.mp3").codec == "mp3"
    [job] = [json.loads(line) for line in cli("jobs", "--json").stdout.splitlines()]
    fetched = tmp_path / "again" / "below"
    result = cli("get", job["id"], "-o", str(fetched))
    assert (result.returncode, result.stdout.strip()) == (0, str(fetched / "h264_aac.mp3"))
    assert inspect_audio(fetched / "h264_aac.mp3").codec == "mp3"
    # A file where the folder should be is a usage error, as before.
    (tmp_path / "taken").write_bytes(b"")
    for command in (["convert", str(video)], ["get", job["id"]]):
        refused = cli(*command, "-o", str(tmp_path / "taken"))
        assert refused.returncode == 2
        assert "is not a directory" in refused.stderr


@pytest.fixture
def two_at_once(tmp_path: Path) -> Iterator[str]:
    """A dev stack that takes two active jobs per user and asks for a second's wait past that."""
    settings = {"VIDEO2MP3_MAX_ACTIVE_JOBS": "2", "VIDEO2MP3_ACTIVE_JOBS_RETRY_SECONDS": "1"}
    with dev_stack(tmp_path / "var", tmp_path / "dev.log", **settings) as base:
        yield base


def test_convert_waits_its_turn_past_the_limit_of_active_jobs(
    two_at_once: str, samples: dict[str, Path], media_dir: Path, tmp_path: Path
) -> None:
    base = two_at_once
    cli = Cli(tmp_path / "config", base)
    log_in(cli, base, "patient@example.com")
    token = json.loads((cli.home / "video2mp3" / "config.json").read_text())["token"]
    fill_up(base, {"Authorization": f"Bearer {token}"}, make_sample(LONG, media_dir))
    videos = [samples[name] for name in VIDEOS]

    # Ctrl-C while it waits: exit 130 at once, nothing left behind.
    folder = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "video2mp3.cli", "convert", "-o", str(folder), str(videos[0])],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    while "waiting: " not in (line := proc.stdout.readline()):
        assert line, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert not folder.exists()

    # Three commands at once, five files for two places: every one waits its turn and converts.
    def convert(mode: str, *files: Path) -> subprocess.Popen[str]:
        flags = ["--json"] if mode == "json" else []
        return subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", "convert", *flags,
             "-o", str(tmp_path / mode), *map(str, files)],
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    lines, jsonl = convert("lines", *videos), convert("json", *videos)
    code, screen = cli.in_terminal(
        "convert", "-o", str(tmp_path / "bars"), str(videos[0]), cwd=tmp_path
    )
    assert code == 0, screen
    assert f"{videos[0]}: waiting: " in screen
    assert "(too_many_jobs); trying again within 1 s" in screen
    out, err = lines.communicate(timeout=120)
    assert (lines.returncode, err) == (0, ""), out
    for video in videos:
        words = [
            line.removeprefix(f"{video}: ").split(" ")[0]
            for line in out.splitlines()
            if line.startswith(f"{video}: ")
        ]
        before = words[: words.index("queued")]  # uploading and waiting, in either order
        assert before, words
        assert set(before) <= {"uploading", "waiting:"}, words
        assert words[-1] == "saved", words
    assert any("you have 2 jobs waiting or converting" in line for line in out.splitlines()), out
    out, err = jsonl.communicate(timeout=120)
    assert (jsonl.returncode, err) == (0, ""), out
    events = [json.loads(line) for line in out.splitlines()]
    waits = [e for e in events if e["event"] == "waiting"]
    assert waits, events
    assert all(e["code"] == "too_many_jobs" and e["retry_in"] <= 1 for e in waits)
    assert sorted(e["file"] for e in events if e["event"] == "saved") == sorted(map(str, videos))
    for mode in ("lines", "json", "bars"):
        for mp3 in (tmp_path / mode).iterdir():
            assert inspect_audio(mp3).codec == "mp3"
    assert (
        len(list((tmp_path / "lines").iterdir())) == len(list((tmp_path / "json").iterdir())) == 2
    )
