"""When the server says "not now", the client waits and tries again instead of failing.

A ``429`` (``too_many_jobs``: the user has as many jobs waiting or converting as allowed) or a
``503`` (a busy or unreachable backend) carries ``Retry-After``; ``retry_after`` reads it, as
seconds or as an HTTP date, within ``MIN_WAIT`` and ``MAX_WAIT``. ``Admission`` is the one
policy every upload of a command goes through. One refusal holds every upload of the command,
not only the refused one, until its wait is over, or at once when one of the command's own jobs
ends (its place is free); then a single upload tries first, and the others follow once the server
has taken it. A full server so sees one attempt per wait, not one per file left. Too many jobs
is waited out however long it lasts (the user's jobs end, or time out); a server unavailable for
``PATIENCE`` seconds in a row fails the uploads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from video2mp3.client.errors import Cancelled, ClientError

T = TypeVar("T")
Waiting = Callable[[ClientError, float], None]  # the refusal, seconds until the next try

MIN_WAIT = 1.0  # a "0", or a date gone by, would otherwise mean trying again in a tight loop
MAX_WAIT = 300.0  # a server asking for hours is more likely wrong than right: ask again sooner
DEFAULT_WAIT = 10.0  # when the answer does not say
PATIENCE = 600.0  # seconds of 503 in a row after which uploads fail


def retry_after(header: str | None, *, now: datetime | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date), within
    ``MIN_WAIT`` and ``MAX_WAIT``; ``DEFAULT_WAIT`` when it is absent or unreadable."""
    value = (header or "").strip()
    if value.isascii() and value.isdigit():
        seconds = float(min(int(value), int(MAX_WAIT)))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_WAIT
        if when.tzinfo is None:  # "-0000": UTC, with no claim to be local
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, MIN_WAIT), MAX_WAIT)


@dataclass(frozen=True)
class _Hold:
    refusal: ClientError
    until: float  # on the monotonic clock


class Admission:
    """The uploads of one command, held together while the server refuses them.

    ``stop`` is the command's Ctrl-C; ``cancel`` sets it and wakes every wait at once.
    """

    def __init__(self, stop: threading.Event, *, patience: float = PATIENCE) -> None:
        self.stop = stop
        self.patience = patience
        self._changed = threading.Condition()
        self._hold: _Hold | None = None
        self._probing = False  # an upload is finding out whether the hold can end
        self._unavailable_since: float | None = None

    def send(self, upload: Callable[[], T], waiting: Waiting) -> T:
        """``upload()``'s result: sent once no refusal holds it, and again after each refusal.

        ``waiting`` is told each refusal this upload waits on. Raises ``Cancelled`` when stopped
        and the upload's own ``ClientError`` for any other failure, or a 503 past patience.
        """
        while True:
            probe = self._enter(waiting)
            try:
                result = upload()
            except ClientError as exc:
                if exc.retry_after is not None and self.stop.is_set():
                    self._leave(probe)
                    raise Cancelled() from None
                if exc.retry_after is None or self._out_of_patience(exc):
                    self._leave(probe)
                    raise
                self._refused(exc, probe)
                continue
            except BaseException:
                self._leave(probe)
                raise
            self._admitted(probe)
            return result

    def freed(self) -> None:
        """One of the command's jobs ended: a wait for too many jobs is over now."""
        with self._changed:
            hold = self._hold
            if hold is not None and hold.refusal.status == 429:
                self._hold = _Hold(hold.refusal, time.monotonic())
                self._changed.notify_all()

    def cancel(self) -> None:
        """Stop the command: every upload waiting here raises ``Cancelled`` at once."""
        with self._changed:
            self.stop.set()
            self._changed.notify_all()

    def _enter(self, waiting: Waiting) -> bool:
        """Wait until this upload may go; whether it goes as the one probe of a hold."""
        told: _Hold | None = None
        with self._changed:
            while True:
                if self.stop.is_set():
                    raise Cancelled()
                hold = self._hold
                if hold is None:
                    return False
                left = hold.until - time.monotonic()
                if left <= 0 and not self._probing:
                    self._probing = True
                    return True
                if told is not hold:
                    waiting(hold.refusal, max(left, 0.0))
                    told = hold
                # A probe in flight wakes everyone when it is answered.
                self._changed.wait(left if left > 0 else None)

    def _out_of_patience(self, refusal: ClientError) -> bool:
        with self._changed:
            if refusal.status != 503:
                self._unavailable_since = None
                return False
            now = time.monotonic()
            if self._unavailable_since is None:
                self._unavailable_since = now
            return now - self._unavailable_since >= self.patience

    def _refused(self, refusal: ClientError, probe: bool) -> None:
        with self._changed:
            self._hold = _Hold(refusal, time.monotonic() + (refusal.retry_after or 0.0))
            if probe:
                self._probing = False
            self._changed.notify_all()

    def _admitted(self, probe: bool) -> None:
        with self._changed:
            self._unavailable_since = None
            if probe:  # there was room: everyone held may go
                self._hold = None
                self._probing = False
                self._changed.notify_all()

    def _leave(self, probe: bool) -> None:
        """An upload ended otherwise: if it was the probe, the next one held becomes it."""
        if probe:
            with self._changed:
                self._probing = False
                self._changed.notify_all()
