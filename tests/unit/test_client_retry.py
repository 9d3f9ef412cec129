"""The client's one retry policy: how long a 429 or 503 asks it to wait, and how a refusal holds
every upload of a command (``client/retry.py``)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from tests.support import wait_for
from video2mp3.client.api import Api
from video2mp3.client.errors import Cancelled, ClientError
from video2mp3.client.retry import DEFAULT_WAIT, MAX_WAIT, MIN_WAIT, Admission, retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 20 ", 20.0),
        ("0", MIN_WAIT),  # never a busy loop
        ("86400", MAX_WAIT),  # never for hours
        ("9" * 40, MAX_WAIT),
        (format_datetime(NOW + timedelta(seconds=45), usegmt=True), 45.0),
        ("Sun, 01 Mar 2026 12:01:30 GMT", 90.0),
        ("Sun, 01 Mar 2026 12:00:30 -0000", 30.0),  # a date without a zone is UTC
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), MIN_WAIT),  # gone by
        (None, DEFAULT_WAIT),
        ("", DEFAULT_WAIT),
        ("-5", DEFAULT_WAIT),
        ("1.5", DEFAULT_WAIT),
        ("soon", DEFAULT_WAIT),
        ("٣", DEFAULT_WAIT),  # a digit, but not an ASCII one
    ],
)
def test_retry_after_reads_seconds_or_a_date_within_bounds(
    header: str | None, seconds: float
) -> None:
    assert retry_after(header, now=NOW) == seconds


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    client = Api("http://v2m.test", "token")
    yield client
    client.close()


@pytest.mark.parametrize(
    ("status", "headers", "code", "wait"),
    [
        (429, {"Retry-After": "7"}, "too_many_jobs", 7.0),
        (503, {}, "unavailable", DEFAULT_WAIT),
        (413, {"Retry-After": "7"}, "too_large", None),  # only 429 and 503 mean "later"
    ],
)
def test_a_refused_upload_carries_how_long_to_wait(
    api: Api,
    tmp_path: Path,
    status: int,
    headers: dict[str, str],
    code: str,
    wait: float | None,
) -> None:
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x" * 1000)
    api.http._transport = httpx.MockTransport(
        lambda request: httpx.Response(
            status, headers=headers, json={"error": {"code": code, "message": "not now"}}
        )
    )
    with pytest.raises(ClientError) as refused:
        api.upload(video, {}, lambda done, total: None)
    assert (refused.value.code, refused.value.status, refused.value.retry_after) == (
        code,
        status,
        wait,
    )


def refusal(seconds: float, status: int = 429) -> ClientError:
    code = "too_many_jobs" if status == 429 else "unavailable"
    return ClientError(code, "not now", status=status, retry_after=seconds)


class Server:
    """A fake upload endpoint: refuses while ``full``, counts what it was sent, and when."""

    def __init__(self, full: bool = True, status: int = 429, wait: float = 0.2) -> None:
        self.full, self.status, self.wait = full, status, wait
        self.sent: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def upload(self, name: str) -> Callable[[], str]:
        def send() -> str:
            with self.lock:
                self.sent.append((name, time.monotonic()))
                if self.full:
                    raise refusal(self.wait, self.status)
            return f"job-{name}"

        return send


def in_threads(*calls: Callable[[], object]) -> tuple[list[threading.Thread], dict[int, object]]:
    results: dict[int, object] = {}

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            results[index] = call()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    return threads, results


def test_a_refusal_holds_every_upload_until_its_wait_is_over() -> None:
    admission = Admission(threading.Event())
    server = Server(wait=0.5)
    waits: list[tuple[str, str, float]] = []

    def upload(name: str) -> Callable[[], object]:
        told = lambda error, seconds: waits.append((name, error.code, seconds))  # noqa: E731
        return lambda: admission.send(server.upload(name), told)

    threads, results = in_threads(upload("a"))
    wait_for(lambda: server.sent, 5, "a refused upload")
    refused_at = server.sent[0][1]
    # The three others wait for the same end without asking the server.
    more, more_results = in_threads(*map(upload, "bcd"))
    wait_for(lambda: {name for name, _, _ in waits} == set("abcd"), 5, "four waiting uploads")
    assert len(server.sent) == 1, server.sent
    assert {code for _, code, _ in waits} == {"too_many_jobs"}  # each said why it waits
    assert all(0 <= seconds <= 0.5 for _, _, seconds in waits)
    server.full = False
    for thread in threads + more:
        thread.join(5)
    assert sorted([results[0], *more_results.values()]) == ["job-a", "job-b", "job-c", "job-d"]
    retries = [at for _, at in server.sent[1:]]
    assert len(retries) == 4  # one try each once the wait was over: nobody hammered
    assert min(retries) - refused_at >= 0.49


def test_while_the_server_stays_full_one_upload_at_a_time_asks_once_per_wait() -> None:
    admission = Admission(threading.Event())
    server = Server(wait=0.1)

    def upload(name: str) -> Callable[[], object]:
        return lambda: admission.send(server.upload(name), lambda e, s: None)

    threads, results = in_threads(upload("a"))
    wait_for(lambda: server.sent, 5, "a refused upload")
    more, more_results = in_threads(*map(upload, "bc"))
    wait_for(lambda: len(server.sent) >= 5, 5, "five refusals")
    server.full = False
    for thread in threads + more:
        thread.join(5)
    refused = [at for _, at in server.sent[:5]]  # all before the server had room
    gaps = [later - earlier for earlier, later in itertools.pairwise(refused)]
    assert min(gaps) >= 0.099, gaps  # never two at once, never before the wait is over
    assert sorted([results[0], *more_results.values()]) == ["job-a", "job-b", "job-c"]


def test_one_of_our_jobs_finishing_ends_a_wait_for_too_many_jobs_at_once() -> None:
    admission = Admission(threading.Event())
    server = Server(wait=30)
    threads, results = in_threads(lambda: admission.send(server.upload("a"), lambda e, s: None))
    wait_for(lambda: server.sent, 5, "a refused upload")
    server.full = False
    admission.freed()  # a job of this command finished: its place is free
    threads[0].join(5)
    assert results == {0: "job-a"}


def test_stopping_ends_a_wait_at_once() -> None:
    stop = threading.Event()
    admission = Admission(stop)
    server = Server(wait=30)
    threads, results = in_threads(
        *(lambda n=n: admission.send(server.upload(n), lambda e, s: None) for n in "ab")
    )
    wait_for(lambda: server.sent, 5, "a refused upload")
    started = time.monotonic()
    admission.cancel()
    for thread in threads:
        thread.join(5)
    assert time.monotonic() - started < 1
    assert stop.is_set()
    assert all(isinstance(r, Cancelled) for r in results.values()), results


def test_an_unavailable_server_is_waited_for_only_so_long() -> None:
    admission = Admission(threading.Event(), patience=0.3)
    server = Server(status=503, wait=0.05)
    threads, results = in_threads(lambda: admission.send(server.upload("a"), lambda e, s: None))
    threads[0].join(5)
    [failed] = results.values()
    assert isinstance(failed, ClientError)
    assert failed.code == "unavailable"
    assert len(server.sent) >= 3  # tried again meanwhile
    # Too many jobs is waited for as long as it takes: the user's own jobs end.
    server = Server(status=429, wait=0.05)
    threads, results = in_threads(lambda: admission.send(server.upload("b"), lambda e, s: None))
    wait_for(lambda: len(server.sent) >= 8, 5, "longer than the patience for 503")
    server.full = False
    threads[0].join(5)
    assert results == {0: "job-b"}


def test_other_errors_are_not_retried() -> None:
    admission = Admission(threading.Event())

    def send() -> str:
        raise ClientError("too_large", "the upload exceeds the limit")

    with pytest.raises(ClientError) as failed:
        admission.send(send, lambda e, s: None)
    assert failed.value.code == "too_large"
