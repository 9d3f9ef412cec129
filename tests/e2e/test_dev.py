"""`video2mp3 dev`: the same journey against the one-process embedded stack."""

from __future__ import annotations

import email
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.e2e.flow import run_journey
from tests.support import free_port, wait_for


@contextmanager
def dev_stack(tmp_path: Path) -> Iterator[str]:
    """``video2mp3 dev`` on a free port with its data under ``tmp_path/var``; its base URL.
    Stopped afterwards, and it must stop cleanly."""
    port, data = free_port(), tmp_path / "var"
    with (tmp_path / "dev.log").open("wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", "dev", "--port", str(port), "--data-dir", data],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, 60, "the dev stack")
        yield base
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, (tmp_path / "dev.log").read_text()[-3000:]


def test_the_embedded_stack(samples: dict[str, Path], tmp_path: Path) -> None:
    with dev_stack(tmp_path) as base:

        def inbox() -> list[email.message.Message]:
            return [
                email.message_from_bytes(p.read_bytes())
                for p in (tmp_path / "var" / "outbox").glob("*.eml")
            ]

        run_journey(base, samples, inbox, tmp_path)
    assert "curl" in (tmp_path / "dev.log").read_text()  # it told the user how to use it
