"""A mutation check of the suite: ``make mutants`` (``python -m tests.mutants [NAME...]``).

Copies the source tree to a temporary directory, then, for each named mutant below, breaks the
code there on purpose (one exact text replacement in one or more files), runs the tests that
guard that behaviour against the copy, and expects them to FAIL. Prints a score table; exits 1
if a mutant survives, 2 if one no longer applies (the code moved: update its text). The tests of
every mutant are first run on the unbroken copy, where they must pass. Not part of
``make test``: it takes several minutes and needs the same services as the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the repository
    old: str  # must occur exactly once
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]  # pytest arguments
    env: tuple[tuple[str, str], ...] = ()  # for its tests, beside the environment's own


# Debian 12's ffmpeg: what an option only newer ffmpeg knows breaks (apt-get install ffmpeg).
DEBIAN_FFMPEG = (("VIDEO2MP3_FFMPEG", "/usr/bin/ffmpeg"),)


MUTANTS = (
    Mutant(
        "ffmpeg-newer-option",
        "the loudness pass uses an ebur128 option that ffmpeg before 6.1 rejects",
        (Edit("src/video2mp3/converter/loudness.py", "framelog=verbose", "framelog=quiet"),),
        ("tests/integration/test_options.py", "-k", "normalize"),
        DEBIAN_FFMPEG,
    ),
    Mutant(
        "segments-in-matroska",
        "AAC is copied for segments into Matroska, whose priming samples ffmpeg 5.1 drops",
        (
            Edit(
                "src/video2mp3/converter/command.py",
                'container = "mp4" if stream.codec == "aac" else "matroska"',
                'container = "matroska"',
            ),
        ),
        ("tests/integration/test_fanout.py", "-k", "gapless"),
        DEBIAN_FFMPEG,
    ),
    Mutant(
        "probe-crash-refuses",
        "a file the probe's sandbox dies on is refused instead of read by ffmpeg",
        (
            Edit(
                "src/video2mp3/converter/probing.py",
                "facts = self._second_way(path)",
                'raise MediaError(f"could not be analysed ({exc})", code="invalid_media")',
            ),
        ),
        ("tests/integration/test_analysis.py", "-k", "dies_on"),
    ),
    Mutant(
        "upload-buffered",
        "the upload is joined in memory before it is stored",
        (
            Edit(
                "src/video2mp3/gateway/service.py",
                "size_limited = limited(chunks, self.max_upload_bytes, "
                "too_large(self.max_upload_bytes))",
                'size_limited = iter([b"".join(limited(chunks, self.max_upload_bytes, '
                "too_large(self.max_upload_bytes)))])",
            ),
        ),
        ("tests/integration/test_upload_memory.py", "-k", "gateway"),
    ),
    Mutant(
        "multipart-buffered",
        "the multipart parser gathers the whole file part before handing it on",
        (
            Edit(
                "src/video2mp3/gateway/multipart.py",
                "yield from _part_data(self._events)",
                'yield b"".join(_part_data(self._events))',
            ),
        ),
        ("tests/integration/test_upload_memory.py", "-k", "parser"),
    ),
    Mutant(
        "jwks-no-refetch",
        "an unknown key id does not refetch the key set (only its expiry does)",
        (
            Edit(
                "src/video2mp3/gateway/tokens.py",
                "if age > KEYSET_TTL or (kid not in self._keys and age > REFRESH_INTERVAL):",
                "if age > KEYSET_TTL:",
            ),
        ),
        ("tests/unit/test_auth.py",),
    ),
    Mutant(
        "handler-on-io-thread",
        "the handler runs on the connection's thread: heartbeats stop while it works",
        (
            Edit(
                "src/video2mp3/adapters/bus/rabbitmq.py",
                "in_hand.add(pool.submit(self._deliver, *work))",
                "self._deliver(*work)",
            ),
        ),
        ("tests/contract/test_bus.py", "-k", "heartbeats"),
    ),
    Mutant(
        "bitrate-ignored",
        "the asked bitrate is ignored: always the default VBR",
        (
            Edit(
                "src/video2mp3/converter/command.py",
                'return ["-c:a", "libmp3lame", "-b:a", f"{options.bitrate}k"]',
                'return ["-c:a", "libmp3lame", "-q:a", "2"]',
            ),
        ),
        ("tests/integration/test_options.py", "-k", "quality_and_bitrate"),
    ),
    Mutant(
        "gridfs-no-abort",
        "a failed GridFS upload is not aborted: its chunks stay",
        (
            Edit(
                "src/video2mp3/adapters/blobs/gridfs.py",
                '            self._chunks.delete_many({"files_id": oid})\n'
                '            self._files.delete_one({"_id": oid})\n',
                "            pass\n",
            ),
        ),
        ("tests/contract/test_blobs.py", "-k", "GridFS"),
    ),
    Mutant(
        "no-format-whitelist",
        "ffmpeg and the probe open any container they recognise",
        (
            Edit("src/video2mp3/converter/probe.py", '"format_whitelist": FORMATS,', ""),
            Edit(
                "src/video2mp3/converter/ffmpeg.py",
                'for option in ("format_whitelist", "protocol_whitelist",',
                'for option in ("protocol_whitelist",',
            ),
        ),
        ("tests/integration/test_converter.py", "-k", "whitelist or playlist"),
    ),
    Mutant(
        "mp3-always-transcoded",
        "an MP3 source is re-encoded instead of copied",
        (
            Edit(
                "src/video2mp3/converter/command.py",
                '        stream.codec == "mp3"\n',
                '        stream.codec == "no such codec"\n',
            ),
        ),
        ("tests/integration/test_options.py", "-k", "copied"),
    ),
    Mutant(
        "job-of-anyone",
        "a job is found by its id alone, whoever asks",
        (
            Edit(
                "src/video2mp3/adapters/sql/jobs.py",
                "sa.select(Job).filter_by(id=job_id, owner_id=owner_id))",
                "sa.select(Job).filter_by(id=job_id))",
            ),
        ),
        ("tests/integration/test_gateway_api.py", "-k", "owner"),
    ),
    Mutant(
        "finished-job-changes",
        "a finished job still takes events: a late progress reopens it",
        (Edit("src/video2mp3/domain/jobs.py", "if self.finished:\n", "if False:\n"),),
        ("tests/unit/test_jobs.py", "tests/contract/test_sql.py", "-k", "monotonic or final"),
    ),
    Mutant(
        "outbox-own-transaction",
        "the request is queued in a transaction of its own, before the job is stored",
        (
            Edit(
                "src/video2mp3/adapters/sql/jobs.py",
                "            session.add(job)\n            _enqueue(session, event)\n",
                "            _enqueue(session, event)\n"
                "        with translated(), self._session.begin() as session:\n"
                "            session.add(job)\n",
            ),
        ),
        ("tests/contract/test_sql.py", "-k", "cannot_be_stored"),
    ),
    Mutant(
        "sweep-ignores-silence",
        "the sweep fails every processing job, news or not",
        (Edit("src/video2mp3/adapters/sql/jobs.py", ", jobs.c.updated_at < before", ""),),
        ("tests/contract/test_sql.py", "-k", "stalled"),
    ),
    Mutant(
        "upload-end-not-awaited",
        "a video converted while it arrives gives an MP3 whether or not its upload completed",
        (
            Edit(
                "src/video2mp3/converter/worker.py",
                "            src.whole.wait()\n            src.check()\n",
                "",
            ),
        ),
        ("tests/integration/test_streaming.py", "-k", "aborted and local"),
    ),
    Mutant(
        "give-up-silent",
        "after the last failed delivery the job is not reported failed",
        (
            Edit(
                "src/video2mp3/converter/worker.py",
                '        failed so that it does not stay pending."""\n',
                '        failed so that it does not stay pending."""\n        return\n',
            ),
        ),
        ("tests/integration/test_production_adapters.py", "-k", "fifth"),
    ),
    Mutant(
        "webhook-error-escapes",
        "an error sending one webhook delivery escapes it, uncounted",
        (
            Edit(
                "src/video2mp3/notifier/webhooks.py",
                "            result = self.sender.send(delivery)\n"
                "        except Exception as exc:\n",
                "            result = self.sender.send(delivery)\n"
                "        except InvalidUrl as exc:\n",
            ),
        ),
        ("tests/integration/test_webhook_failures.py", "-k", "raises"),
    ),
    Mutant(
        "webhook-bad-url-retried",
        "a URL that can never be sent to is retried for 27 hours, its endpoint left enabled",
        (
            Edit(
                "src/video2mp3/notifier/webhooks.py",
                "last = result.final or tries >= len(RETRY_DELAYS)",
                "last = tries >= len(RETRY_DELAYS)",
            ),
            Edit(
                "src/video2mp3/notifier/webhooks.py",
                "result.final or utcnow() - failing_since",
                "utcnow() - failing_since",
            ),
        ),
        ("tests/integration/test_webhook_failures.py", "-k", "cannot_be_delivered"),
    ),
)


def pytest_run(
    copy: Path, args: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()
) -> tuple[int, float, str]:
    """Run pytest on the copy (its own sources first on the path), with ``extra`` in its
    environment: exit code, seconds, and the end of its output."""
    env = {**os.environ, **dict(extra), "PYTHONPATH": f"{copy / 'src'}{os.pathsep}{copy}"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    started = time.monotonic()
    done = subprocess.run(command, cwd=copy, env=env, capture_output=True, check=False)
    return done.returncode, time.monotonic() - started, done.stdout.decode(errors="replace")[-3000:]


def apply(copy: Path, edits: tuple[Edit, ...]) -> dict[Path, str] | str:
    """Apply the edits; the original texts, or why an edit no longer applies."""
    originals: dict[Path, str] = {}
    for edit in edits:
        path = copy / edit.path
        text = path.read_text()
        originals.setdefault(path, text)
        if text.count(edit.old) != 1:
            restore(originals)
            return f"{edit.path}: the text to change occurs {text.count(edit.old)} times"
        path.write_text(text.replace(edit.old, edit.new))
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text)


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="mutants-of-video2mp3-") as tmp:
        copy = Path(tmp) / "tree"
        shutil.copytree(
            ROOT,
            copy,
            ignore=shutil.ignore_patterns(".venv", ".git", "var", "__pycache__", ".*_cache"),
        )
        for mutant in chosen:
            code, _, output = pytest_run(copy, mutant.tests, mutant.env)
            if code != 0:
                print(f"{mutant.name}: its tests fail unmutated:\n{output}", file=sys.stderr)
                rows.append((mutant.name, f"ERROR: its tests fail unmutated (exit {code})", 0.0))
                continue
            originals = apply(copy, mutant.edits)
            if isinstance(originals, str):
                rows.append((mutant.name, f"ERROR: {originals}", 0.0))
                continue
            try:
                code, seconds, _ = pytest_run(copy, mutant.tests, mutant.env)
            finally:
                restore(originals)
            verdict = {0: "SURVIVED", 1: "killed"}.get(code, f"ERROR: pytest exit {code}")
            rows.append((mutant.name, verdict, seconds))
            print(f"{mutant.name}: {verdict}", file=sys.stderr, flush=True)
    killed = sum(1 for _, verdict, _ in rows if verdict == "killed")
    print(f"\n{'mutant':<24} {'result':<10} {'seconds':>8}  what")
    for (name, verdict, seconds), mutant in zip(rows, chosen, strict=True):
        print(f"{name:<24} {verdict:<10} {seconds:>8.1f}  {mutant.what}")
    print(f"\nscore: {killed}/{len(rows)} mutants killed")
    if any(verdict.startswith("ERROR") for _, verdict, _ in rows):
        return 2
    return 0 if killed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
