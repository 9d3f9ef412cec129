"""Probing untrusted media from the converter: PyAV in a sandbox process, facts or a clear error.

A crafted file that crashes libav, or exceeds a limit or the time, ends the sandbox's child
(``sandbox``), never the worker, and the job fails ``invalid_media``; a probe that cannot run at
all (PyAV missing) is the operators' problem, ``probe_failed``.
"""

from __future__ import annotations

import importlib.util
import logging
import resource
from pathlib import Path

from video2mp3.converter.facts import MediaInfo
from video2mp3.converter.ffmpeg import MEMORY_LIMIT
from video2mp3.converter.probe import probe as probe_facts
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
    libav, or exceeds a limit or the time, ends the sandbox's child, never the worker."""

    def __init__(self) -> None:
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
                probe_facts, str(path), whole, timeout=PROBE_TIMEOUT, cpu_seconds=PROBE_TIMEOUT
            )
        except SandboxCrashed as exc:  # killed by a signal, a limit or the clock: the file's doing
            raise MediaError(
                f"the file could not be analysed ({exc})", code="invalid_media"
            ) from None
        except Exception:  # our failure (say, PyAV missing), not the file's
            log.exception("the probe failed")
            raise Video2mp3Error(
                "the converter could not analyse files; operators are told", code="probe_failed"
            ) from None
        if "error" in facts:
            raise MediaError(facts["error"]["message"], code=facts["error"]["code"])
        return MediaInfo.from_json(facts)

    def close(self) -> None:
        self._sandbox.close()
