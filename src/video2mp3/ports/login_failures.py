"""Login failures port: recent failed logins counted per key (an account, a client address).

The policy (how many failures, how long to wait) is auth's ``throttle``; this stores the counts
where every worker and replica sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True)
class Failures:
    count: int
    last: datetime  # naive UTC


class LoginFailures(Protocol):
    def get(self, keys: list[str]) -> dict[str, Failures]:
        """The counts of those of ``keys`` that have any. ``Unavailable``."""
        ...

    def add(self, key: str, now: datetime, window: timedelta) -> None:
        """Count one failure at ``now``; a count whose last failure is older than ``window``
        starts again at 1, and such old counts are forgotten. ``Unavailable``."""
        ...

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures. Idempotent; ``Unavailable``."""
        ...
