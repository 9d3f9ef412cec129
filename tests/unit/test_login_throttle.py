"""Login throttling: per account and per address, growing Retry-After, no argon2 while throttled,
and a right password never waits when nothing is throttled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from video2mp3 import migrations
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.login_failures import SQLLoginFailures, login_failures
from video2mp3.adapters.sql.users import SQLUserRepository as UserRepository
from video2mp3.auth import throttle as throttle_module
from video2mp3.auth.accounts import Accounts
from video2mp3.auth.keys import KeyRing, generate
from video2mp3.auth.throttle import FREE, MAX_DELAY, LoginThrottle, delay
from video2mp3.errors import TooManyRequests, Unauthorized

ANN = "ann@example.com"


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    generate(tmp_path / "keys")
    engine = create_engine(f"sqlite:///{tmp_path}/auth.db")
    migrations.upgrade(engine, "auth")
    keys = KeyRing.load(tmp_path / "keys")
    service = Accounts(
        UserRepository(engine),
        keys,
        LoginThrottle(SQLLoginFailures(engine)),
        token_ttl=60,
        signup_enabled=True,
    )
    service.register(ANN, "correct horse")
    return service


class CountingHasher:
    """Counts argon2 verifications, delegating to the real hasher."""

    def __init__(self, real: PasswordHasher) -> None:
        self.real = real
        self.verified = 0

    def verify(self, hash: str, password: str) -> bool:
        self.verified += 1
        return self.real.verify(hash, password)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def fail(accounts: Accounts, times: int, email: str = ANN, address: str = "192.0.2.1") -> None:
    for _ in range(times):
        with pytest.raises(Unauthorized):
            accounts.login(email, "wrong password", address)


def test_delays_grow_and_are_capped() -> None:
    free = FREE["account"]
    assert [delay("account", free + n) for n in range(-1, 4)] == [0, 1, 2, 4, 8]
    assert delay("account", free + 40) == MAX_DELAY


def test_an_account_is_throttled_after_a_few_failures_without_checking_the_password(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail(accounts, FREE["account"])  # the last free failure starts a 1 s wait
    hasher = CountingHasher(accounts.hasher)
    monkeypatch.setattr(accounts, "hasher", hasher)
    with pytest.raises(TooManyRequests) as caught:
        accounts.login(ANN, "correct horse", "192.0.2.1")
    assert caught.value.retry_after == 1
    with pytest.raises(TooManyRequests):  # from another address too: it is the account's count
        accounts.login(ANN, "wrong password", "198.51.100.7")
    assert hasher.verified == 0  # no argon2 work for a throttled attempt


def test_the_wait_grows_with_each_failure(accounts: Accounts) -> None:
    fail(accounts, FREE["account"])
    waits = []
    for _ in range(4):
        with pytest.raises(TooManyRequests) as caught:
            accounts.login(ANN, "wrong password", "192.0.2.1")
        waits.append(caught.value.retry_after)
        _age(accounts, seconds=caught.value.retry_after or 0)  # as if the wait had passed
        fail(accounts, 1)
    assert waits == [1, 2, 4, 8]


def test_an_address_is_throttled_across_accounts(accounts: Accounts) -> None:
    for n in range(FREE["address"]):
        fail(accounts, 1, email=f"user{n}@example.com", address="203.0.113.9")
    with pytest.raises(TooManyRequests):
        accounts.login(ANN, "correct horse", "203.0.113.9")
    assert accounts.login(ANN, "correct horse", "192.0.2.1")  # elsewhere, Ann logs in


def test_a_success_clears_the_accounts_count_and_old_failures_are_forgotten(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail(accounts, FREE["account"] - 1)  # one short of a wait
    assert accounts.login(ANN, "correct horse", "192.0.2.1")
    fail(accounts, FREE["account"] - 1)
    assert accounts.login(ANN, "correct horse", "192.0.2.1")  # the count restarted
    fail(accounts, FREE["account"])
    with pytest.raises(TooManyRequests):
        accounts.login(ANN, "correct horse", "192.0.2.1")
    _age(accounts, seconds=int(throttle_module.WINDOW.total_seconds()) + 1)
    assert accounts.login(ANN, "correct horse", "192.0.2.1")


def _age(accounts: Accounts, seconds: int) -> None:
    """Move every recorded failure ``seconds`` into the past."""
    table = login_failures
    engine = accounts.throttle.failures.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for key, last in conn.execute(sa.select(table.c.key, table.c.last_failure_at)).all():
            earlier = last - timedelta(seconds=seconds)
            conn.execute(table.update().where(table.c.key == key).values(last_failure_at=earlier))
