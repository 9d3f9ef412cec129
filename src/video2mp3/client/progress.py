"""How ``convert`` tells what happens to each file: bars on a terminal, one line per event
through a pipe, or one JSON object per line with ``--json``.

Reporters are called from several transfer threads at once; each keeps its output whole per
event. A file the server cannot take yet is ``waiting``, with the server's reason: said once per
reason (its tries meanwhile are not news), and over as soon as it is queued. Failures also go to
stderr as one line each (``FILE: code: message``), whatever the mode, so a script can count them
without parsing the rest.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)


class Reporter(Protocol):
    def uploading(self, file: str, done: int, total: int) -> None: ...
    def waiting(self, file: str, code: str, message: str, seconds: float) -> None: ...
    def queued(self, file: str, job_id: str) -> None: ...
    def converting(self, file: str, status: str, progress: float) -> None: ...
    def saved(self, file: str, path: str, job: dict[str, Any]) -> None: ...
    def failed(self, file: str, code: str, message: str) -> None: ...
    def close(self) -> None: ...


def failure_line(file: str, code: str, message: str, err: TextIO) -> None:
    print(f"{file}: {code}: {message}", file=err, flush=True)


def waiting_text(code: str, message: str, seconds: float) -> str:
    return f"waiting: {message} ({code}); trying again within {max(1, math.ceil(seconds))} s"


class _Waits:
    """Which reason each file last waited for: a file says it waits once per reason."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}

    def news(self, file: str, code: str, message: str) -> bool:
        reason = f"{code}: {message}"
        if self.reasons.get(file) == reason:
            return False
        self.reasons[file] = reason
        return True

    def waiting(self, file: str) -> bool:
        return file in self.reasons

    def over(self, file: str) -> None:
        self.reasons.pop(file, None)


class Bars:
    """A rich progress bar per file: its upload (bytes), then its conversion (percent)."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.err = err
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
            console=Console(file=out),
            redirect_stderr=False,  # failure lines must reach stderr even when it is a file
        )
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()
        self.waits = _Waits()
        self.progress.start()

    def _task(self, file: str, total: int) -> TaskID:
        with self.lock:
            if file not in self.tasks:
                self.tasks[file] = self.progress.add_task(f"upload  {file}", total=total)
            return self.tasks[file]

    def uploading(self, file: str, done: int, total: int) -> None:
        task = self._task(file, total)
        if done == 0:  # a first try, or one more after a wait
            self.progress.update(task, description=f"upload  {file}")
        self.progress.update(task, completed=done, total=total)

    def waiting(self, file: str, code: str, message: str, seconds: float) -> None:
        self.progress.update(self._task(file, 1), description=f"waiting {file}", completed=0)
        with self.lock:
            news = self.waits.news(file, code, message)
        if news:  # above the bars, whole, for the terminal to wrap
            text = f"{file}: {waiting_text(code, message, seconds)}"
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def queued(self, file: str, job_id: str) -> None:
        with self.lock:
            self.waits.over(file)
        task = self._task(file, 1)
        # The conversion is counted in per mille, shown as a percentage.
        self.progress.update(task, description=f"convert {file}", completed=0, total=1000)

    def converting(self, file: str, status: str, progress: float) -> None:
        self.progress.update(self._task(file, 1000), completed=round(progress * 1000))

    def saved(self, file: str, path: str, job: dict[str, Any]) -> None:
        task = self._task(file, 1000)
        self.progress.update(task, description=f"saved   {path}", completed=1000, total=1000)

    def failed(self, file: str, code: str, message: str) -> None:
        self.progress.update(self._task(file, 1), description=f"failed  {file} ({code})")
        if self.err.isatty():  # the same screen: above the bars, not through them
            self.progress.console.print(f"{file}: {code}: {message}", style="red", markup=False)
        else:
            failure_line(file, code, message, self.err)

    def close(self) -> None:
        self.progress.stop()


class Lines:
    """One plain line per change of state, for logs and pipes (no progress chatter)."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err
        self.lock = threading.Lock()
        self.status: dict[str, str] = {}
        self.waits = _Waits()

    def _say(self, file: str, text: str) -> None:
        with self.lock:
            print(f"{file}: {text}", file=self.out, flush=True)

    def uploading(self, file: str, done: int, total: int) -> None:
        if done == 0 and not self.waits.waiting(file):
            self._say(file, f"uploading {total} bytes")

    def waiting(self, file: str, code: str, message: str, seconds: float) -> None:
        with self.lock:
            news = self.waits.news(file, code, message)
        if news:
            self._say(file, waiting_text(code, message, seconds))

    def queued(self, file: str, job_id: str) -> None:
        self.status[file] = "queued"
        with self.lock:
            self.waits.over(file)
        self._say(file, f"queued as job {job_id}")

    def converting(self, file: str, status: str, progress: float) -> None:
        if self.status.get(file) != status:
            self.status[file] = status
            self._say(file, status)

    def saved(self, file: str, path: str, job: dict[str, Any]) -> None:
        self._say(file, f"saved {path}")

    def failed(self, file: str, code: str, message: str) -> None:
        with self.lock:
            failure_line(file, code, message, self.err)

    def close(self) -> None:
        pass


class JsonLines:
    """One JSON object per event on stdout: ``{"event", "file", ...}``."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.lines = Lines(out, err)
        self.out, self.err = out, err

    def _emit(self, event: str, file: str, **fields: Any) -> None:
        with self.lines.lock:
            print(json.dumps({"event": event, "file": file, **fields}), file=self.out, flush=True)

    def uploading(self, file: str, done: int, total: int) -> None:
        if done == 0 and not self.lines.waits.waiting(file):
            self._emit("uploading", file, bytes=total)

    def waiting(self, file: str, code: str, message: str, seconds: float) -> None:
        with self.lines.lock:
            news = self.lines.waits.news(file, code, message)
        if news:
            retry_in = round(seconds, 1)
            self._emit("waiting", file, code=code, message=message, retry_in=retry_in)

    def queued(self, file: str, job_id: str) -> None:
        self.lines.status[file] = "queued"
        with self.lines.lock:
            self.lines.waits.over(file)
        self._emit("queued", file, job_id=job_id)

    def converting(self, file: str, status: str, progress: float) -> None:
        if self.lines.status.get(file) != status:
            self.lines.status[file] = status
            self._emit(status, file, progress=progress)

    def saved(self, file: str, path: str, job: dict[str, Any]) -> None:
        self._emit("saved", file, path=path, job_id=job["id"], size=job.get("mp3_size"))

    def failed(self, file: str, code: str, message: str) -> None:
        self._emit("failed", file, code=code, message=message)
        with self.lines.lock:
            failure_line(file, code, message, self.err)

    def close(self) -> None:
        pass


def reporter(json_lines: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Reporter:
    """JSON lines when asked, bars on a terminal, plain lines otherwise."""
    if json_lines:
        return JsonLines(out, err)
    if Console(file=out).is_terminal:
        return Bars(out, err)
    return Lines(out, err)
