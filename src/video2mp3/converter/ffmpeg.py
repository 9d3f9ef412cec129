"""Running ffmpeg on hostile input: finding it, the flags every run starts with, limits, a
timeout, errors.

Every ffmpeg the converter starts (the conversion, the loudness measurement, the cover still)
goes through ``run``: ``-nostdin``, format and protocol whitelists and bounded probing before
the input; CPU, memory and file-size limits on the child; a wall-clock timeout; and a failure
turned into a ``MediaError`` or ``ConversionTimeout`` with a stable code.

The limits are set by util-linux's ``setpriv`` and ``prlimit``, which exec ffmpeg in their place,
not by a ``preexec_fn``: without one, Python spawns the child (``vfork``) instead of forking the
converter, whose copy costs 10-40 ms per child (measured: a 300 MB process with 30 threads) and
which is unsafe in a process with threads.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from video2mp3.converter.probe import PROBE_OPTIONS
from video2mp3.errors import ConversionTimeout, MediaError, SettingsError, Video2mp3Error

MAX_BITRATE_BPS = 320_000
MEMORY_LIMIT = 2 * 1024**3
FSIZE_SLACK = 8 * 1024 * 1024
# How a child tells that it never became ffmpeg: the shell's exit statuses for a command that
# could not be run or found, and the messages of the tools that set its limits.
NOT_STARTED = (126, 127)
# What the kernel kills a child over its limits with: CPU time (soft, then hard), file size.
LIMIT_SIGNALS = (signal.SIGXCPU, signal.SIGKILL, signal.SIGXFSZ)
LIMITER_ERRORS = ("setpriv:", "prlimit:")
ARMING_SECONDS = 5.0  # setpriv arms its kill-with-the-parent within about a millisecond
DEADLINE_CHECK_SECONDS = 0.5  # how often a watch looks whether its deadline has moved


def hardened_input(
    ffmpeg: str, src: Path | None, *, seek: float | None = None, loglevel: str = "error"
) -> list[str]:
    """The start of every command line, up to and including the one input ``src`` (``None``:
    the standard input, a file still arriving); ``seek`` starts reading there (decoding resumes
    at the exact sample, not the previous key frame; a file, not a pipe)."""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel, "-y"]
    # The one protocol the input needs: "pipe" for the standard input, else "file".
    options = {**PROBE_OPTIONS, "protocol_whitelist": "pipe" if src is None else "file"}
    for option in ("format_whitelist", "protocol_whitelist", "probesize", "analyzeduration"):
        args += [f"-{option}", options[option]]
    if seek:
        args += ["-ss", seconds(seek)]
    return [*args, "-i", "pipe:0" if src is None else str(src)]


def seconds(value: float) -> str:
    """A time for ffmpeg's command line, to the millisecond."""
    return f"{value:.3f}"


@dataclass(frozen=True)
class Ran:
    """What a finished ffmpeg run told: its stderr, and (with ``-progress pipe:1``) the seconds
    of output it wrote, which is the output's duration: no second probe of it is needed."""

    stderr: str
    written_seconds: float | None


def run(
    args: list[str],
    *,
    deadline: Callable[[], float],
    file_bytes: int,
    on_progress: Callable[[float], None] | None = None,
    duration: float | None = None,
    stdin: Feed | None = None,
) -> Ran:
    """Run ``args`` until ``deadline()`` (monotonic; ``within``), which may move later while
    its input still arrives; ``MediaError`` or ``ConversionTimeout`` if it fails,
    ``NotStarted`` if it could not run at all.

    With ``on_progress``, the command must end with ``-progress pipe:1`` before its output.
    ``stdin``: bytes of a (possibly growing) file for its standard input.
    """
    timed_out = threading.Event()
    started = time.monotonic()
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(  # as a context: the progress pipe is closed, not left to the GC
            limited(
                args,
                cpu_seconds=max(1, int(deadline() - started)) * 4,  # it may use several cores
                file_bytes=file_bytes + FSIZE_SLACK,  # -fs overshoots
            ),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as proc,
    ):
        armed(proc)
        ended = threading.Event()
        threading.Thread(target=_watch, args=(proc, deadline, ended, timed_out),
                         daemon=True).start()  # fmt: skip
        if stdin:
            threading.Thread(target=_pump, args=(proc, stdin), daemon=True).start()
        try:
            written = _follow(proc, duration, on_progress or (lambda _: None))
            code = proc.wait()
        finally:
            ended.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    if timed_out.is_set() and code != 0:
        taken = time.monotonic() - started
        raise ConversionTimeout(f"the conversion took longer than {taken:.0f} s")
    if -code in LIMIT_SIGNALS:  # CPU time or file size
        raise MediaError(
            "the conversion needed more CPU, memory or disk than allowed", code="resource_limit"
        )
    if code < 0:  # a crash: a damaged or crafted file, or a bug of that ffmpeg build
        raise MediaError(
            f"ffmpeg crashed on the file ({signal.Signals(-code).name})", code="ffmpeg_crashed"
        )
    if code in NOT_STARTED or errors.startswith(LIMITER_ERRORS):
        raise NotStarted(errors.strip() or f"exit status {code}")
    if code != 0:
        last = errors.strip().splitlines()[-1:] or ["?"]
        raise MediaError(f"ffmpeg could not convert the file: {last[0]}")
    return Ran(errors, written)


class NotStarted(Exception):
    """ffmpeg could not be run at all: the converter's fault, not the file's. Not a
    ``Video2mp3Error``, so the job is not failed but tried again, here or on another converter,
    until the delivery limit (README "Failure modes")."""


def check_ffmpeg(ffmpeg: str, timeout: int, max_seconds: int) -> None:
    """Fail at start-up, not on every job, when ffmpeg cannot run under the limits of the
    longest job (say, a hard limit of the converter's own below them)."""
    try:
        run([ffmpeg, "-version"], deadline=within(timeout),
            file_bytes=max_output_bytes(max_seconds))  # fmt: skip
    except (NotStarted, Video2mp3Error) as exc:
        raise SettingsError(f"ffmpeg ({ffmpeg}) cannot run under its limits: {exc}") from None


def limited(args: list[str], *, cpu_seconds: int, file_bytes: int) -> list[str]:
    """``args`` run with CPU time, memory and written file size capped before they start, and
    killed by the kernel once the thread that started them has died: a SIGKILLed converter
    leaves no ffmpeg working on for nobody (its wall-clock timer died with it). ``setpriv``
    arms that within a millisecond of the spawn; ``run`` holds its thread until ffmpeg ends."""
    setpriv, prlimit = limiters()
    return [
        setpriv, "--pdeathsig", "KILL", "--",
        prlimit, f"--cpu={cpu_seconds}", f"--as={MEMORY_LIMIT}", f"--fsize={file_bytes}", "--",
        *args,
    ]  # fmt: skip


def within(seconds: float) -> Callable[[], float]:
    """A fixed deadline ``seconds`` from now, for ``run``."""
    end = time.monotonic() + seconds
    return lambda: end


def _watch(
    proc: subprocess.Popen[str],
    deadline: Callable[[], float],
    ended: threading.Event,
    timed_out: threading.Event,
) -> None:
    """Kill ``proc`` once ``deadline()`` has passed, looking again at least every
    ``DEADLINE_CHECK_SECONDS``: a deadline may move later while the input still arrives."""
    while not ended.wait(min(DEADLINE_CHECK_SECONDS, max(0.0, deadline() - time.monotonic()))):
        if time.monotonic() >= deadline():
            timed_out.set()
            proc.kill()
            return


def armed(proc: subprocess.Popen[str]) -> None:
    """Wait until ``setpriv`` has asked the kernel to kill ``proc`` with this thread, which it
    has once it runs the next program (within a millisecond): a thread gone before that would
    leave it running. A fork with a ``preexec_fn`` had no such moment, but cost 10-40 ms.

    The program a process runs is read from ``/proc/PID/exe``, set before a spawn returns (the
    child has then run setpriv), not from its name, which the kernel sets a moment later."""
    program = Path(f"/proc/{proc.pid}/exe")
    setpriv = os.path.realpath(limiters()[0])
    deadline = time.monotonic() + ARMING_SECONDS
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # gone already
        while program.readlink().as_posix() == setpriv and proc.poll() is None:
            if time.monotonic() > deadline:  # stuck: its timeout ends it
                return
            time.sleep(0.0002)


@functools.cache
def limiters() -> tuple[str, str]:
    """util-linux's ``setpriv`` and ``prlimit``, which every ffmpeg runs under (``limited``)."""
    found = shutil.which("setpriv"), shutil.which("prlimit")
    if found[0] is None or found[1] is None:
        raise SettingsError("the converter needs setpriv and prlimit: install util-linux")
    return found[0], found[1]


@dataclass(frozen=True)
class Feed:
    """``count`` bytes of ``source`` from ``offset`` (``None``: to its end) for a child's standard
    input. While ``finished`` is not set, the file is still being written: wait for more."""

    source: Path
    offset: int
    count: int | None
    finished: threading.Event


def _pump(proc: subprocess.Popen[str], feed: Feed) -> None:
    """Send the fed bytes to the child's standard input as they become available (in the
    kernel: ``sendfile``); a child that stops reading ends it, and its exit status says why."""
    assert proc.stdin is not None
    offset, left = feed.offset, feed.count
    try:
        with feed.source.open("rb") as data:
            while left is None or left > 0:
                done = feed.finished.is_set()  # before the size: no byte written after is missed
                available = os.fstat(data.fileno()).st_size - offset
                if available <= 0:
                    if done:
                        break
                    time.sleep(0.01)
                    continue
                size = available if left is None else min(available, left)
                sent = os.sendfile(proc.stdin.fileno(), data.fileno(), offset, size)
                offset += sent
                left = None if left is None else left - sent
    except (OSError, ValueError):
        pass  # the child closed its input (its exit status tells why), or ``run`` has ended
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def max_output_bytes(max_seconds: int) -> int:
    """The largest MP3 ``max_seconds`` of audio can make, with room for headers."""
    return max_seconds * MAX_BITRATE_BPS // 8 + 1024 * 1024


def _follow(
    proc: subprocess.Popen[str], duration: float | None, on_progress: Callable[[float], None]
) -> float | None:
    """Read ffmpeg's ``-progress`` lines, report the fraction done; the seconds written."""
    assert proc.stdout is not None
    written = None
    with proc.stdout:
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.isdigit():
                written = int(value) / 1_000_000
                if duration:
                    on_progress(min(written / duration, 1.0))
    return written
