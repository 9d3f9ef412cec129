"""The ``video2mp3 convert`` client on ``video2mp3 dev``: how fast it uploads and how much memory
it needs for a large file (it streams, so its peak should not grow with the file), against the
same upload with curl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stack import Stack, embedded, sign_up


def random_file(path: Path, size: int) -> Path:
    """``size`` bytes that are no video: the server fails the job at once, after the upload."""
    if not path.exists() or path.stat().st_size != size:
        with path.open("wb") as out:
            for _ in range(size >> 24):
                out.write(os.urandom(1 << 24))
    return path


def _convert(stack: Stack, config: Path, video: Path) -> dict[str, Any]:
    """Run the client once; seconds of upload (first to last upload event) and its peak RSS."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(config), "VIDEO2MP3_SERVER": stack.url}
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "video2mp3.cli", "convert", "--json", "-o", out, str(video)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        moments = {}
        for line in proc.stdout:
            moments.setdefault(json.loads(line)["event"], time.monotonic())
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
    return {
        "upload_s": round(moments["queued"] - moments["uploading"], 2),
        "client_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
    }


def _curl(stack: Stack, token: str, video: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        ["curl", "-sf", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}",
         "-F", f"file=@{video}", f"{stack.url}/api/v1/jobs"],
        check=True,
    )  # fmt: skip
    return round(time.monotonic() - started, 2)


def upload(cache: Path, sizes: tuple[int, ...] = (1 << 26, 1 << 30)) -> dict[str, Any]:
    """For each size: the client's upload time and peak RSS, and curl's upload time."""
    results: dict[str, Any] = {}
    with embedded() as stack, tempfile.TemporaryDirectory() as config:
        user = sign_up(stack.url)
        token = user["Authorization"].removeprefix("Bearer ")
        subprocess.run(
            [sys.executable, "-m", "video2mp3.cli", "login", "--email", "bench@example.com",
             "--password-stdin", "--server", stack.url],
            input="pw-123456\n", text=True, check=True, capture_output=True,
            env={**os.environ, "XDG_CONFIG_HOME": config},
        )  # fmt: skip
        for size in sizes:
            video = random_file(cache / f"random-{size >> 20}MiB.bin", size)
            results[f"{size >> 20}MiB"] = {
                **_convert(stack, Path(config), video),
                "curl_upload_s": _curl(stack, token, video),
            }
    return results
