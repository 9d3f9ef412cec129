"""Tests that need a service fail under CI=true and skip elsewhere, saying what to start."""

import pytest

from tests.support import need


def unreachable() -> None:
    raise ConnectionRefusedError("nothing listens")


def test_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"RabbitMQ is not reachable.*start it"):
        need("RabbitMQ", unreachable, "start it")


def test_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="start it"):
        need("RabbitMQ", unreachable, "start it")


def test_passes_when_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    need("RabbitMQ", lambda: None, "start it")
