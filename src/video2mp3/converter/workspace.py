"""The converter's scratch directories, and the removal of those a killed converter left behind.

A conversion works in a private directory under the temporary directory (an emptyDir in
Kubernetes). If the container is killed (the OOM killer, a probe), the directory outlives it in
the pod's emptyDir and the retry would need room for a second copy. Each directory is therefore
held under an ``flock`` while in use: the lock dies with its process, so at start-up a converter
removes exactly the directories no live process holds, even when the new process reuses the old
one's PID (as PID 1 in a restarted container does).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "video2mp3-"
LOCK = ".in-use"
# A directory this young may be between its creation and its lock: leave it alone.
MIN_AGE_SECONDS = 60.0


@contextlib.contextmanager
def workspace() -> Iterator[str]:
    """A private directory, locked while in use and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=PREFIX) as tmp, Path(tmp, LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield tmp


def remove_leftovers(root: Path | None = None) -> list[Path]:
    """Remove the scratch directories under ``root`` that no live process holds; list them."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for directory in root.glob(f"{PREFIX}*"):
        if not directory.is_dir() or time.time() - directory.stat().st_mtime < MIN_AGE_SECONDS:
            continue
        try:
            with Path(directory, LOCK).open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(directory)
        except BlockingIOError:
            continue  # a live converter holds it
        except FileNotFoundError:
            continue  # its owner has just removed it
        removed.append(directory)
    if removed:
        log.warning("removed %d scratch directories left by a killed converter", len(removed))
    return removed
