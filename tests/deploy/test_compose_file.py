"""compose.yaml: docker-compose accepts it, and the stack it describes starts in a sound order.

docker-compose v1 (`config`) checks the file against the Compose schema without an engine; the
resolved configuration it prints is then checked for healthchecks, start order and replicas.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

Validator = Callable[..., subprocess.CompletedProcess[str]]
INFRASTRUCTURE = {"rabbitmq", "mongodb", "mysql", "mailpit"}


@pytest.fixture(scope="module")
def services(validator: Validator, staged: Path) -> dict[str, Any]:
    result = validator("docker-compose", "config", cwd=staged)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_compose_file_is_valid(validator: Validator, staged: Path) -> None:
    result = validator("docker-compose", "config", "-q", cwd=staged)
    assert result.returncode == 0, result.stderr


def test_a_broken_compose_file_is_rejected(
    validator: Validator, staged: Path, tmp_path: Path
) -> None:
    shutil.copy(staged / ".env", tmp_path)
    text = (staged / "compose.yaml").read_text()
    (tmp_path / "compose.yaml").write_text(
        text.replace("\n  gateway:\n", "\n  gateway:\n    restart_policy: always\n")
    )
    result = validator("docker-compose", "config", "-q", cwd=tmp_path)
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_stack_starts_in_order_of_health(
    services: dict[str, Any], service_ports: dict[str, int], admin_ports: dict[str, int]
) -> None:
    assert set(services) >= INFRASTRUCTURE | set(service_ports)
    for name in INFRASTRUCTURE | set(service_ports):
        assert services[name]["healthcheck"]["test"], name
    for name, service in services.items():
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] in {
                "service_healthy",
                "service_completed_successfully",
            }, name
    for name, port in admin_ports.items():
        assert services[name]["healthcheck"]["test"][-1] == str(port), name
    assert services["converter"]["deploy"]["replicas"] == 2
    assert services["mongodb"]["image"].startswith("mongo:7")
    assert services["mysql"]["image"].startswith("mysql:8")
    assert services["rabbitmq"]["image"].endswith("-management")
    for name in INFRASTRUCTURE:  # a patch release, never a moving tag
        assert re.search(r":v?\d+\.\d+\.\d+(-[a-z]+)?$", services[name]["image"]), name


# What each service reads (video2mp3/bootstrap.py and cli.py); nothing else reaches its container.
READS = {
    "auth": {"AUTH_DB_URL", "JWT_KEY_DIR", "JWT_TTL_SECONDS", "SIGNUP_ENABLED", "WEB_WORKERS"},
    "gateway": {
        "JOBS_DB_URL", "AUTH_URL", "MAX_UPLOAD_BYTES", "WEB_WORKERS", "MONGODB_URL",
        "LINK_KEY_DIR", "LINK_TTL_SECONDS", "SIGNUP_ENABLED", "PUBLIC_URL",
    },
    "gateway-worker": {
        "JOBS_DB_URL", "BROKER_URL", "BROKER_PREFIX", "MONGODB_URL", "CONVERSION_TIMEOUT_SECONDS",
    },
    "converter": {
        "BROKER_URL", "BROKER_PREFIX", "MONGODB_URL", "CONVERSION_TIMEOUT_SECONDS",
        "MAX_DURATION_SECONDS",
    },
    "notifier": {
        "BROKER_URL", "BROKER_PREFIX", "SMTP_URL", "MAIL_FROM", "PUBLIC_URL", "LINK_KEY_DIR",
        "LINK_TTL_SECONDS", "NOTIFIER_DB_URL",
    },
}  # fmt: skip


def test_each_service_gets_only_its_own_settings(services: dict[str, Any]) -> None:
    for name, reads in READS.items():
        environment = services[name]["environment"]
        assert set(environment) == {f"VIDEO2MP3_{key}" for key in reads | {"LOG_LEVEL"}}, name
        assert all(value for value in environment.values()), name  # each is set in .env
    assert "MYSQL_ROOT_PASSWORD" not in str(
        {name: s.get("environment") for name, s in services.items() if name != "mysql"}
    )
    assert "change-me-root" not in str({n: s for n, s in services.items() if n != "mysql"})


def test_grace_periods_match_kubernetes(services: dict[str, Any]) -> None:
    # docker-compose prints the grace period in seconds, as "1500s" or "25m0s".
    def seconds(value: str) -> int:
        minutes, _, rest = value.rpartition("m")
        return int(minutes or 0) * 60 + int(rest.rstrip("s") or 0)

    assert seconds(services["converter"]["stop_grace_period"]) >= 1200 + 300
    assert seconds(services["gateway"]["stop_grace_period"]) >= 300


def test_mounted_files_exist(services: dict[str, Any]) -> None:
    # docker-compose prints a bind mount as an absolute source, a target and a mode.
    sources = [
        Path(volume.split(":")[0])
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith("/") and ":" in volume
    ]
    assert sources
    assert [source for source in sources if not source.is_file()] == []
