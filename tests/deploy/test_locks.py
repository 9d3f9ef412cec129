"""The images' dependency locks follow pyproject.toml: every pin hashed, nothing drifted.

The images install `deploy/docker/web.lock` (auth, gateway, notifier) or `converter.lock` with
`--require-hashes`, then the package without dependencies: a dependency added to pyproject.toml
but not locked would be missing from the images, a removed one would still ship, and a raised
minimum would go unmet. `make lock` rewrites both locks; these tests say when it is due.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "deploy/docker"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SELF = "video2mp3 (pyproject.toml)"
EXTRAS = {"web.lock": [], "converter.lock": ["converter"]}


@dataclass
class Pin:
    version: Version
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(text: str) -> dict[str, Pin]:
    """A uv/pip-tools requirements file with hashes, by canonical package name."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in text.splitlines():
        if match := re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", line):
            current = pins[canonicalize_name(match[1])] = Pin(Version(match[2]))
        elif current and (digest := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            current.hashes.append(digest[1])
        elif current and (via := re.match(r"^\s+#\s+(?:via\s+)?(?!via$)(\S.*)$", line)):
            current.via.append(via[1])
    return pins


def drift(text: str, extras: list[str], project: dict = PROJECT) -> list[str]:
    """How a lock falls short of pyproject.toml's dependencies (with ``extras``) and build backend.

    Each direct dependency is pinned within its range, nothing else is marked as one (so a dropped
    dependency does not linger), and every pin carries hashes.
    """
    pins = read_lock(text)
    declared = [Requirement(spec) for spec in project["project"]["dependencies"]]
    for extra in extras:
        declared += [Requirement(s) for s in project["project"]["optional-dependencies"][extra]]
    build = [Requirement(spec) for spec in project["build-system"]["requires"]]
    problems = []
    for requirement in [*declared, *build]:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement.name} is not locked")
        elif pin.version not in requirement.specifier:
            problems.append(f"{requirement.name}=={pin.version} is outside {requirement}")
    direct = {name for name, pin in pins.items() if SELF in pin.via}
    for name in sorted(direct - {canonicalize_name(r.name) for r in declared}):
        problems.append(f"{name} is locked as a dependency pyproject.toml no longer declares")
    problems += [f"{name} has no hash" for name, pin in pins.items() if not pin.hashes]
    return problems


@pytest.mark.parametrize("lock", EXTRAS)
def test_the_lock_follows_pyproject(lock: str) -> None:
    text = (LOCKS / lock).read_text()
    assert drift(text, EXTRAS[lock]) == [], "run `make lock`"
    assert "#    make lock\n" in text  # how to redo it, in its header
    assert len(read_lock(text)) > 20


def test_the_converter_lock_extends_the_web_lock_with_the_same_versions() -> None:
    web = read_lock((LOCKS / "web.lock").read_text())
    converter = read_lock((LOCKS / "converter.lock").read_text())
    shared = {name: pin.version for name, pin in converter.items() if name in web}
    assert shared == {name: pin.version for name, pin in web.items()}
    assert {"av", "imageio-ffmpeg"} <= converter.keys() - web.keys()


def test_drift_is_seen() -> None:
    """Each kind of drift the images could suffer is reported."""
    text = (LOCKS / "web.lock").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert drift(re.sub(r"(?m)^flask==\S+", "flask==3.0.0", text), []) == [
        "flask==3.0.0 is outside flask>=3.1"
    ]
    assert drift(re.sub(r"(?ms)^pika==.*?(?=^\S)", "", text), []) == ["pika is not locked"]
    extra = project["project"]["optional-dependencies"]["converter"]
    assert drift(text, ["converter"]) == [f"{Requirement(s).name} is not locked" for s in extra]
    project["project"]["dependencies"].remove("requests>=2.32")
    assert drift(text, [], project) == [
        "requests is locked as a dependency pyproject.toml no longer declares"
    ]
    unhashed = re.sub(r"(?ms)^(alembic==\S+) \\\n(\s+--hash=\S+(?: \\)?\n)+", r"\1\n", text)
    assert drift(unhashed, []) == ["alembic has no hash"]
