"""Login throttling: the policy over failures counted per account and per client address.

After ``FREE`` failures in a row (per account, or more per address: many people may share one
behind a NAT) each further attempt must wait, 1 s after the next failure, then 2, 4 ... up to
``MAX_DELAY``. A throttled attempt is answered 429 with ``Retry-After`` before any password is
checked, so guessing costs the attacker time and the server no argon2 work. Failures older than
``WINDOW`` are forgotten; a success clears its account's count (not its address's: one valid
account must not reset an address that guesses at others). The counts are kept by a
``LoginFailures`` store that every worker and replica shares.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from video2mp3.errors import TooManyRequests
from video2mp3.ports.login_failures import LoginFailures

FREE = {"account": 5, "address": 20}
MAX_DELAY = 15 * 60
WINDOW = timedelta(minutes=15)


def delay(kind: str, failures: int) -> int:
    """Seconds to wait after the last of ``failures`` failures on a key of ``kind``."""
    beyond = failures - FREE[kind]
    return 0 if beyond < 0 else min(2**beyond, MAX_DELAY)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class LoginThrottle:
    def __init__(self, failures: LoginFailures) -> None:
        self.failures = failures

    def check(self, email: str, address: str) -> None:
        """Raise ``TooManyRequests`` (with ``retry_after``) if either key must still wait."""
        kinds = {f"account:{email}": "account", f"address:{address}": "address"}
        now = _now()
        wait = 0.0
        for key, found in self.failures.get(list(kinds)).items():
            if now - found.last > WINDOW:
                continue
            until = found.last + timedelta(seconds=delay(kinds[key], found.count))
            wait = max(wait, (until - now).total_seconds())
        if wait > 0:
            raise TooManyRequests(
                "too many failed logins; try again later", retry_after=math.ceil(wait)
            )

    def failed(self, email: str, address: str) -> None:
        """Count a failure against the account and the address."""
        now = _now()
        for key in (f"account:{email}", f"address:{address}"):
            self.failures.add(key, now, WINDOW)

    def succeeded(self, email: str) -> None:
        self.failures.clear(f"account:{email}")
