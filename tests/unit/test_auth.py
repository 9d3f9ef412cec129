"""Accounts and tokens: argon2 hashes, uniform login failures, EdDSA JWTs verified via JWKS."""

from pathlib import Path
from typing import Any

import jwt
import pytest

from video2mp3 import bootstrap, migrations
from video2mp3.adapters.sql.engine import create_engine
from video2mp3.adapters.sql.login_failures import SQLLoginFailures
from video2mp3.adapters.sql.users import SQLUserRepository as UserRepository
from video2mp3.auth.accounts import Accounts
from video2mp3.auth.keys import KeyRing, generate
from video2mp3.auth.throttle import LoginThrottle
from video2mp3.errors import Conflict, Forbidden, InvalidRequest, Unauthorized, Unavailable
from video2mp3.gateway.tokens import KEYSET_TTL, REFRESH_INTERVAL, REFUSED, TokenVerifier
from video2mp3.settings import load


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    generate(tmp_path / "keys")
    engine = create_engine(f"sqlite:///{tmp_path}/auth.db")
    migrations.upgrade(engine, "auth")
    users = UserRepository(engine)
    keys = KeyRing.load(tmp_path / "keys")
    throttle = LoginThrottle(SQLLoginFailures(engine))
    return Accounts(users, keys, throttle, token_ttl=60, signup_enabled=True)


class CountingIdentity:
    """Serves an Accounts' JWKS and counts fetches; ``down`` makes it unreachable."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.fetches = 0
        self.down = False

    def jwks(self) -> dict[str, Any]:
        self.fetches += 1
        if self.down:
            raise Unavailable("auth is down")
        return self.accounts.keys.jwks()


def test_passwords_are_stored_as_argon2_hashes(accounts: Accounts) -> None:
    user = accounts.register("Ann@Example.com", "correct horse")
    assert user.email == "ann@example.com"
    stored = accounts.users.by_email("ann@example.com")
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert "correct horse" not in stored.password_hash


def test_registration_rules(accounts: Accounts) -> None:
    accounts.register("ann@example.com", "correct horse")
    with pytest.raises(Conflict):
        accounts.register("ANN@example.com", "another password")
    with pytest.raises(InvalidRequest, match="email"):
        accounts.register("not-an-email", "correct horse")
    with pytest.raises(InvalidRequest, match="password"):
        accounts.register("bob@example.com", "short")
    accounts.signup_enabled = False
    with pytest.raises(Forbidden):
        accounts.register("carl@example.com", "correct horse")


def test_login_fails_the_same_way_for_any_miss(accounts: Accounts) -> None:
    accounts.register("ann@example.com", "correct horse")
    messages = set()
    for email, password in [
        ("ann@example.com", "wrong"),
        ("nobody@example.com", "x"),
        ("bad", "x"),
    ]:
        with pytest.raises(Unauthorized) as caught:
            accounts.login(email, password, "192.0.2.1")
        messages.add(caught.value.message)
    assert len(messages) == 1


def test_an_invalid_email_matches_no_account_even_where_it_begins_with_one(
    accounts: Accounts,
) -> None:
    longest = "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 61])  # 254 characters
    accounts.register(longest, "correct horse")
    with pytest.raises(Unauthorized):
        accounts.login(longest + "x", "correct horse", "192.0.2.1")  # 255: no such email
    assert accounts.login(longest, "correct horse", "192.0.2.1")


def test_tokens_verify_against_the_published_keys(accounts: Accounts) -> None:
    user = accounts.register("ann@example.com", "correct horse")
    token = accounts.login("ann@example.com", "correct horse", "192.0.2.1")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == accounts.keys.signing.kid
    principal = TokenVerifier(CountingIdentity(accounts)).verify(token)
    assert (principal.user_id, principal.email) == (user.id, "ann@example.com")


def test_expired_forged_and_foreign_tokens_are_refused_with_one_message(
    accounts: Accounts, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The library's reason is logged at debug level, never answered: it would tell a caller
    which part of a forgery to fix next."""
    user = accounts.register("ann@example.com", "correct horse")
    verifier = TokenVerifier(CountingIdentity(accounts))
    accounts.token_ttl = -10
    expired = accounts.issue_token(user)
    accounts.token_ttl = 60
    good = accounts.issue_token(user)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    other = KeyRing.load(generate(tmp_path / "other").parent)
    stranger = Accounts(accounts.users, other, accounts.throttle, token_ttl=60, signup_enabled=True)
    tokens = {
        "Signature has expired": expired,
        "Signature verification failed": forged,
        "unknown key": stranger.issue_token(user),
        "Not enough segments": "not.a",
    }
    caplog.set_level("DEBUG", logger="video2mp3.gateway.tokens")
    for reason, token in tokens.items():
        caplog.clear()
        with pytest.raises(Unauthorized) as refused:
            verifier.verify(token)
        assert (
            refused.value.message
            == REFUSED
            == "the token is missing, expired or invalid; log in again"
        )
        assert [(r.levelname, reason in r.getMessage()) for r in caplog.records] == [
            ("DEBUG", True)
        ]


def test_key_rotation_refetches_once_for_a_new_key_and_not_again_soon(
    accounts: Accounts, tmp_path: Path
) -> None:
    """A token signed by a key the gateway has never seen is accepted after exactly one refetch,
    though the cached key set has not expired; another unknown key right after costs none."""
    user = accounts.register("ann@example.com", "correct horse")
    identity = CountingIdentity(accounts)
    verifier = TokenVerifier(identity)
    old_token = accounts.issue_token(user)
    verifier.verify(old_token)
    assert identity.fetches == 1
    generate(tmp_path / "keys")  # a newer key: it signs from now on
    accounts.keys = KeyRing.load(tmp_path / "keys")
    new_token = accounts.issue_token(user)
    assert kid(new_token) != kid(old_token)
    # Older than the refetch interval, far younger than the key set's expiry: only the unknown
    # key id can make the verifier fetch again.
    verifier._fetched_at -= REFRESH_INTERVAL + 1
    assert REFRESH_INTERVAL + 1 < KEYSET_TTL
    assert verifier.verify(new_token).user_id == user.id
    assert verifier.verify(old_token).user_id == user.id
    assert identity.fetches == 2
    generate(tmp_path / "keys")  # yet another key, within the refetch interval
    accounts.keys = KeyRing.load(tmp_path / "keys")
    newest = accounts.issue_token(user)
    with pytest.raises(Unauthorized, match=REFUSED):
        verifier.verify(newest)
    assert identity.fetches == 2  # forged or early kids cannot hammer auth


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_a_key_auth_stops_publishing_stops_being_trusted(
    accounts: Accounts, tmp_path: Path
) -> None:
    user = accounts.register("ann@example.com", "correct horse")
    verifier = TokenVerifier(CountingIdentity(accounts))
    old_token = accounts.issue_token(user)
    verifier.verify(old_token)
    for pem in (tmp_path / "keys").glob("*.pem"):
        pem.unlink()  # the old key is retired (say, leaked) ...
    generate(tmp_path / "keys")
    accounts.keys = KeyRing.load(tmp_path / "keys")
    verifier._fetched_at -= 301  # ... and the cached key set has expired
    with pytest.raises(Unauthorized, match=REFUSED):
        verifier.verify(old_token)


def test_cached_keys_serve_while_auth_is_down(accounts: Accounts) -> None:
    user = accounts.register("ann@example.com", "correct horse")
    identity = CountingIdentity(accounts)
    verifier = TokenVerifier(identity)
    token = accounts.issue_token(user)
    verifier.verify(token)
    identity.down = True
    verifier._fetched_at -= 301
    assert verifier.verify(token).user_id == user.id
    fresh = TokenVerifier(identity)
    for _ in range(2):  # no cache to fall back on: 503 each time, never a 401
        with pytest.raises(Unavailable):
            fresh.verify(token)


def test_the_argon2_cost_comes_from_the_settings(tmp_path: Path) -> None:
    generate(tmp_path / "keys")
    settings = load(
        auth_db_url=f"sqlite:///{tmp_path}/auth.db",
        jwt_key_dir=tmp_path / "keys",
        argon2_memory_kib=8192,
        argon2_time_cost=1,
    )
    bootstrap.create_schemas(settings, "auth")
    accounts = bootstrap.accounts(settings)
    user = accounts.register("cost@example.com", "pw-123456")
    assert "$m=8192,t=1,p=1$" in accounts.users.by_email(user.email).password_hash  # type: ignore[union-attr]
    # A hash made at another cost still verifies, and is redone at the configured one.
    stronger = bootstrap.accounts(settings.model_copy(update={"argon2_memory_kib": 9216}))
    assert stronger.authenticate("cost@example.com", "pw-123456", "192.0.2.1").id == user.id
    assert "$m=9216," in accounts.users.by_email(user.email).password_hash  # type: ignore[union-attr]
