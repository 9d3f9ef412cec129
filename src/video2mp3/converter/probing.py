"""Probing untrusted media from the converter: PyAV in a sandbox process, facts or a clear error.

A file that crashes libav, or exceeds a limit or the time, ends the sandbox's child
(``sandbox``), never the worker; the file is then read a second way, by ffmpeg (``report``),
before anything is said of it: a valid file that trips a bug of PyAV's still converts, and one
that also crashes ffmpeg fails ``analysis_crashed``. A probe that cannot run at all (PyAV
missing) is the operators' problem, ``probe_failed``.
"""

from __future__ import annotations

import importlib.util
import logging
import resource
import subprocess
from pathlib import Path
from typing import Any

from video2mp3.converter.facts import MediaInfo
from video2mp3.converter.ffmpeg import MEMORY_LIMIT, within
from video2mp3.converter.probe import probe as probe_facts
from video2mp3.converter.report import report_facts
from video2mp3.converter.sandbox import Sandbox, SandboxCrashed
from video2mp3.errors import MediaError, SettingsError, Video2mp3Error

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 60
PROBE_FILE_BYTES = 1024 * 1024  # the probe writes nothing; room for Python's bytecode cache


def check_probe() -> None:
    """Fail at start-up, not on every job, when PyAV (the probe) is not installed."""
    if importlib.util.find_spec("av") is None:
        raise SettingsError("the converter needs PyAV: install video2mp3[converter]")


class Prober:
    """Probes files with PyAV in a sandbox process (``sandbox``): a crafted file that crashes
    libav, or exceeds a limit or the time, ends the sandbox's child, never the worker; ffmpeg
    reads such a file instead."""

    first_way = staticmethod(probe_facts)  # run in the sandbox's child

    def __init__(self, ffmpeg: str) -> None:
        """``ffmpeg``: the converter's, the second way to read a file."""
        self._ffmpeg = ffmpeg
        self._sandbox = Sandbox(
            {resource.RLIMIT_AS: MEMORY_LIMIT, resource.RLIMIT_FSIZE: PROBE_FILE_BYTES},
            preload=("av", "video2mp3.converter.probe"),
        )

    def start(self) -> None:
        """Start the sandbox's child now and wait until it is up, so that the first job does
        not wait for it."""
        self._sandbox.start()

    def probe(self, path: Path, *, whole: bool = True) -> MediaInfo:
        """What the file holds (only its head, when not ``whole``: ``probe.probe``);
        ``MediaError`` (``invalid_media``, ``no_audio``) if unusable."""
        try:
            facts = self._sandbox.run(
                self.first_way, str(path), whole, timeout=PROBE_TIMEOUT, cpu_seconds=PROBE_TIMEOUT
            )
        except SandboxCrashed as exc:  # killed by a signal, a limit or the clock: the file's doing
            log.warning("the probe died on a file: ffmpeg reads it", extra={"why": str(exc)})
            facts = self._second_way(path)
        except Exception:  # our failure (say, PyAV missing), not the file's
            log.exception("the probe failed")
            raise Video2mp3Error(
                "the converter could not analyse files; operators are told", code="probe_failed"
            ) from None
        if "error" in facts:
            raise MediaError(facts["error"]["message"], code=facts["error"]["code"])
        return MediaInfo.from_json(facts)

    def _second_way(self, path: Path) -> dict[str, Any]:
        """The facts as ffmpeg reports them, when PyAV died on the file."""
        try:
            return report_facts(self._ffmpeg, path, within(PROBE_TIMEOUT))
        except MediaError as exc:
            if exc.code not in ("resource_limit", "ffmpeg_crashed"):  # ffmpeg said what is wrong
                raise
        except (ValueError, OSError, subprocess.SubprocessError) as exc:  # an unknown layout...
            log.warning("ffmpeg's report of a file could not be read", extra={"why": str(exc)})
        raise MediaError(
            "the file could not be analysed: it made both of the converter's readers fail"
            " (it may be damaged, or made to attack converters)",
            code="analysis_crashed",
        )

    def close(self) -> None:
        self._sandbox.close()
