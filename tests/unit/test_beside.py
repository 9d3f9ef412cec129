"""Work done beside a stream of chunks: in order, complete when the stream is, errors raised."""

import hashlib
import threading
from collections.abc import Iterator

import pytest

from video2mp3.beside import AHEAD, beside


def test_the_work_is_done_on_every_chunk_in_order() -> None:
    pieces = [bytes([k]) * (65536 + k) for k in range(3 * AHEAD)]  # hashlib lets go of the GIL
    digest = hashlib.sha256()
    assert list(beside(iter(pieces), digest.update, "test-hash")) == pieces
    assert digest.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_chunks_are_handed_on_while_the_work_lags_behind() -> None:
    released = threading.Event()
    done: list[bytes] = []

    def slow(chunk: bytes) -> None:
        released.wait(10)
        done.append(chunk)

    passed = beside((bytes([k]) for k in range(AHEAD + 2)), slow, "test-slow")
    taken = [next(passed) for _ in range(AHEAD)]  # handed on while the work waits
    assert done == []
    released.set()
    taken += list(passed)
    assert done == taken


def test_a_failing_stream_leaves_the_work_done_and_no_thread() -> None:
    def failing() -> Iterator[bytes]:
        yield b"a" * 10_000
        raise ValueError("the client went away")

    digest = hashlib.sha256()
    with pytest.raises(ValueError, match="went away"):
        list(beside(failing(), digest.update, "test-fail"))
    assert digest.hexdigest() == hashlib.sha256(b"a" * 10_000).hexdigest()
    assert not [t for t in threading.enumerate() if t.name.startswith("test-fail")]


def test_the_works_error_is_raised_in_the_streams_place() -> None:
    def broken(_: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        list(beside(iter([b"a", b"b"]), broken, "test-broken"))
