"""`video2mp3 dev`: the same journey against the one-process embedded stack."""

from __future__ import annotations

import email
from pathlib import Path

from tests.e2e.flow import run_journey
from tests.support import dev_stack


def test_the_embedded_stack(samples: dict[str, Path], tmp_path: Path) -> None:
    with dev_stack(tmp_path / "var", tmp_path / "dev.log") as base:

        def inbox() -> list[email.message.Message]:
            return [
                email.message_from_bytes(p.read_bytes())
                for p in (tmp_path / "var" / "outbox").glob("*.eml")
            ]

        run_journey(base, samples, inbox, tmp_path)
    assert "curl" in (tmp_path / "dev.log").read_text()  # it told the user how to use it
