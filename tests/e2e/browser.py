"""The page's browser tests and its screenshot drive the system's Chromium with Playwright (never
``playwright install``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support import missing, need

CHROMIUM = "/usr/bin/chromium"


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
