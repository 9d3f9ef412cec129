"""Helpers for the page's browser tests and its screenshot: ``video2mp3 dev`` as a subprocess on a
free port, and the system's Chromium driven by Playwright (never ``playwright install``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.support import free_port, missing, need, wait_for

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def dev_stack(data: Path, log: Path, **settings: str) -> Iterator[str]:
    """``video2mp3 dev`` on a free port, its data under ``data``, ``settings`` (``VIDEO2MP3_*``
    variables) in its environment; yields its base URL and checks that it stops cleanly."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", "dev", "--port", str(port), "--data-dir", data],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **settings},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, 60, "the dev stack")
        yield base
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, log.read_text()[-3000:]


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium from the system's packages; fails under CI when it is missing."""
    need(
        "Chromium",
        lambda: shutil.which(CHROMIUM) or missing(CHROMIUM),
        "apt-get install chromium (.ci/run does)",
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: the sandbox needs user namespaces, which containers running as root lack.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield browser
        finally:
            browser.close()
