"""Container images: hadolint passes on every Dockerfile, and each service gets its own target.

Every target runs as a numeric non-root user, exposes its service's port, and installs its
dependencies from a hashed lock: only the converter image carries the `converter` extra (the
bundled ffmpeg and PyAV), and the web targets are built without running the converter's stages.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "deploy/docker"
DOCKERFILES = sorted(DOCKER.glob("**/Dockerfile*"))

Validator = Callable[..., subprocess.CompletedProcess[str]]


def stages(dockerfile: Path) -> dict[str, tuple[str, list[str]]]:
    """Each named stage's base and instructions, continuation lines joined."""
    found: dict[str, tuple[str, list[str]]] = {}
    for line in dockerfile.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if match := re.fullmatch(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            instructions: list[str] = []
            found[match[2] or match[1]] = (match[1], instructions)
        elif line and not line.startswith("#") and found:
            instructions.append(line)
    return found


def lineage(all_stages: dict[str, tuple[str, list[str]]], name: str) -> list[str]:
    """A stage's instructions, those of the stages it is built on first."""
    base, instructions = all_stages[name]
    return (lineage(all_stages, base) if base in all_stages else []) + instructions


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_passes(dockerfile: Path, validator: Validator) -> None:
    result = validator("hadolint", "--no-color", "--failure-threshold", "style", str(dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_careless_dockerfile(validator: Validator, tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN apt-get install ffmpeg\n")
    result = validator("hadolint", "--no-color", "--failure-threshold", "style", str(careless))
    assert result.returncode != 0
    assert {"DL3006", "DL3008"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_each_service_has_a_locked_down_target(service_ports: dict[str, int]) -> None:
    (dockerfile,) = DOCKERFILES
    assert re.search(
        r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", dockerfile.read_text(), re.MULTILINE
    )
    all_stages = stages(dockerfile)
    for service, port in service_ports.items():
        if service == "gateway-worker":
            continue  # the gateway's image with another command
        instructions = lineage(all_stages, service)
        assert f"EXPOSE {port}" in instructions, service
        (user,) = [line for line in instructions if line.startswith("USER ")]
        assert re.fullmatch(r"USER [1-9]\d*(:[1-9]\d*)?", user), service
        (venv_stage,) = re.findall(
            r"^COPY --from=(\S+) /opt/venv", "\n".join(instructions), re.MULTILINE
        )
        installs = [line for line in lineage(all_stages, venv_stage) if "pip install" in line]
        locks = {
            lock for line in installs for lock in re.findall(r"--require-hashes -r (\S+)", line)
        }
        assert locks == {"web.lock", "converter.lock"} if service == "converter" else {"web.lock"}
        assert all(re.search(r"--require-hashes|--no-deps", line) for line in installs), service


def test_the_web_targets_come_before_every_converter_stage() -> None:
    """The legacy builder (no BuildKit) runs every stage above the target, whatever it needs."""
    (dockerfile,) = DOCKERFILES
    all_stages = stages(dockerfile)
    order = list(all_stages)
    for service in ("auth", "gateway", "notifier"):
        above = order[: order.index(service) + 1]
        heavy = [name for name in above if "converter.lock" in " ".join(all_stages[name][1])]
        assert heavy == [], service


def test_the_web_services_start_without_the_converter_extra() -> None:
    """The web images lack the `converter` extra: the command must import without it."""
    extra = tomllib.loads((DOCKER.parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["converter"]
    modules = [re.split(r"[\[<>=~! ]", spec)[0].replace("-", "_") for spec in extra]
    script = (
        f"import sys; sys.modules.update(dict.fromkeys({modules!r}));"
        "from video2mp3.cli import main; main(['serve', '--help'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "gateway" in result.stdout
