"""What the logs keep of a request: never a download link's token."""

from __future__ import annotations

import pytest

from video2mp3.logs import redact


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("/mp3/7.5f0c.1765000000.c2ln", "/mp3/[redacted]"),
        ("GET /mp3/7.5f0c.1765000000.c2ln HTTP/1.1", "GET /mp3/[redacted] HTTP/1.1"),
        ("/mp3/abc/extra", "/mp3/[redacted]/extra"),
        ("/download?fid=1&token=abc.def#x", "/download?fid=1&token=[redacted]#x"),
        ("/x?TOKEN=abc", "/x?TOKEN=[redacted]"),
        ("/api/v1/jobs/5f0c/mp3", "/api/v1/jobs/5f0c/mp3"),
        ("/api/v1/jobs?tokens=1", "/api/v1/jobs?tokens=1"),
    ],
)
def test_tokens_are_redacted(text: str, kept: str) -> None:
    assert redact(text) == kept
