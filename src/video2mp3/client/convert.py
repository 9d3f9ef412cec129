"""``video2mp3 convert FILE...``: upload each file, follow its conversion, save its MP3.

Up to ``--jobs`` files move at once, each in its own thread: upload (streamed, with progress),
then the job polled once a second, then the MP3 saved next to its video (or in ``-o DIR``) under
the server's file name. An upload the server cannot take yet (too many jobs, busy) waits and is
tried again, through the command's one ``Admission``. Ctrl-C or SIGTERM stops every transfer at
its next chunk, and every wait at once, and removes the partial files. The conversion options
are flags generated from ``describe()``, the one description the API, the page and OpenAPI are
built from too.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from video2mp3.client.api import Api
from video2mp3.client.errors import Cancelled, ClientError
from video2mp3.client.progress import Reporter, reporter
from video2mp3.client.retry import Admission
from video2mp3.domain.jobs import mp3_filename
from video2mp3.domain.options import ConversionOptions, describe
from video2mp3.errors import InvalidRequest

POLL_SECONDS = 1.0  # at most one status request per second and file
FINISHED = ("succeeded", "failed")


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per conversion option (``sample_rate`` -> ``--sample-rate``), with its help."""
    group = parser.add_argument_group("conversion options (the server's defaults when omitted)")
    for name, schema in describe()["properties"].items():
        kinds = {s.get("type") for s in schema.get("anyOf", [schema])}
        flag = "--" + name.replace("_", "-")
        help_text = schema.get("description", "")
        if "boolean" in kinds:
            group.add_argument(
                flag, dest=f"option_{name}", action=argparse.BooleanOptionalAction, help=help_text
            )
            continue
        enum = next((s["enum"] for s in schema.get("anyOf", [schema]) if "enum" in s), None)
        metavar = "{" + ",".join(map(str, enum)) + "}" if enum else name.upper()
        group.add_argument(flag, dest=f"option_{name}", metavar=metavar, help=help_text)


def chosen_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, str]:
    """The options given as flags, as form fields; a usage error (exit 2) when invalid."""
    given: dict[str, str] = {}
    for key, value in vars(args).items():
        if key.startswith("option_") and value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            given[key.removeprefix("option_")] = text
    try:
        ConversionOptions.parse(given)
    except InvalidRequest as exc:
        parser.error(exc.message)
    return given


@dataclass(frozen=True)
class _Batch:
    """What every file of one ``convert`` shares."""

    api: Api
    output: Path | None
    force: bool
    options: Mapping[str, str]
    report: Reporter
    admission: Admission


def convert(api: Api, args: argparse.Namespace, options: Mapping[str, str]) -> int:
    """Convert ``args.files``: 0 when every one succeeded, 1 otherwise, 130 when interrupted."""
    report = reporter(args.json)
    batch = _Batch(api, args.output, args.force, options, report, Admission(api.stop))

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    pool = ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="convert")
    try:
        futures = [pool.submit(_one, batch, Path(f)) for f in args.files]
        ok = [future.result() for future in futures]
    except KeyboardInterrupt:
        batch.admission.cancel()  # transfers stop at their next chunk, waits at once
        pool.shutdown(wait=True, cancel_futures=True)  # each thread removes its partial file
        report.close()
        print("video2mp3: interrupted; nothing half-written was left behind", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    pool.shutdown()
    report.close()
    return 0 if all(ok) else 1


def _one(batch: _Batch, path: Path) -> bool:
    """Convert one file; report and return ``False`` on any failure, never raise."""
    name, report = str(path), batch.report
    try:
        if not path.is_file():
            raise ClientError("no_file", "no such file" if not path.exists() else "not a file")
        directory = batch.output or path.parent
        if not batch.force and (directory / mp3_filename(path.name)).exists():
            raise ClientError(
                "exists", f"{directory / mp3_filename(path.name)} exists (use --force)"
            )
        job = _submit(batch, path, name)
        report.queued(name, job["id"])
        job = _follow(batch, job, name)
        if job["status"] != "succeeded":
            error = job.get("error") or {"code": "failed", "message": "the conversion failed"}
            raise ClientError(error["code"], error["message"])
        saved = batch.api.download(job["id"], directory, force=batch.force)
        report.saved(name, str(saved), job)
        return True
    except Cancelled:
        return False
    except ClientError as exc:
        report.failed(name, exc.code, exc.message)
        return False


def _submit(batch: _Batch, path: Path, name: str) -> dict[str, Any]:
    """Queue the conversion of ``path``: the job, once the server takes it. This is where a
    server that already holds the same video (asked by its SHA-256 first) would spare the
    upload; today it always uploads."""
    report, size = batch.report, path.stat().st_size

    def upload() -> dict[str, Any]:
        report.uploading(name, 0, size)
        progress = lambda done, total: report.uploading(name, done, total)  # noqa: E731
        return batch.api.upload(path, batch.options, progress)

    def waiting(refusal: ClientError, seconds: float) -> None:
        report.waiting(name, refusal.code, refusal.message, seconds)

    return batch.admission.send(upload, waiting)


def _follow(batch: _Batch, job: dict[str, Any], name: str) -> dict[str, Any]:
    """Poll the job until it is finished, reporting its progress; its end frees a place."""
    report, took_a_place = batch.report, job["status"] not in FINISHED  # not a cache hit
    while job["status"] not in FINISHED:
        report.converting(name, job["status"], float(job.get("progress") or 0))
        if batch.api.stop.wait(POLL_SECONDS):
            raise Cancelled()
        job = batch.api.job(job["id"])
    if took_a_place:
        batch.admission.freed()
    report.converting(name, job["status"], float(job.get("progress") or 0))
    return job


def check_jobs(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 16:
        raise argparse.ArgumentTypeError("give 1 to 16")
    return number
