"""Work on a stream of chunks done on another core while the stream is read."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

AHEAD = 4  # chunks (about 1 MiB each, as an upload is read) the work may lag behind


def beside(
    chunks: Iterable[bytes], work: Callable[[bytes], object], name: str
) -> Generator[bytes, None, None]:
    """``chunks`` as they come, while a thread of its own (``name``) does ``work`` on each, in
    order, at most ``AHEAD`` chunks behind. For work that lets go of the GIL (hashing, writing
    a file): it runs beside the reading instead of after each read. All of it is done once
    ``chunks`` are exhausted, and its first error is raised in their place."""
    with ThreadPoolExecutor(1, thread_name_prefix=name) as worker:
        pending: deque[Future[object]] = deque()
        for chunk in chunks:
            if len(pending) == AHEAD:
                pending.popleft().result()
            pending.append(worker.submit(work, chunk))
            yield chunk
        for done in pending:
            done.result()
