"""Fixtures for the image tests: a Docker engine, the four images built from this tree, and
hardened containers of them on the host's network.

The engine is the one DOCKER_HOST names (`.ci/docker.sh` starts a private one; CI does). Without
one the tests fail under CI=true and skip elsewhere. The images are rebuilt with `make images`
at the start of the session, so they always hold the code under test; the engine's build cache
makes that a few seconds when nothing changed. PYTHON_IMAGE picks the base, as for `make images`.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import free_port, need, wait_for

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("auth", "gateway", "notifier", "converter")
# The compose file's hardening (x-app), with the host's network: this engine has no bridge.
HARDENED = (
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "10001:10001",
    "--network",
    "host",
)


def docker(*args: str, timeout: float = 120) -> str:
    """Run the docker CLI; its output, or an AssertionError with what it said."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The four images, built from this tree: tag by target."""
    need(
        "A Docker engine",
        lambda: docker("version", "--format", "{{.Server.Version}}", timeout=20),
        "run `source .ci/docker.sh && engine_start && base_image` (sets DOCKER_HOST)",
    )
    build = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "images"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if build.returncode:
        pytest.fail(
            "`make images` failed (no registry here: `source .ci/docker.sh && base_image` makes"
            f" a local base and sets PYTHON_IMAGE):\n{(build.stdout + build.stderr)[-3000:]}"
        )
    return {target: f"video2mp3-{target}" for target in TARGETS}


class Containers:
    """Hardened containers of the service images, each serving on a free port of the host."""

    def __init__(self, images: dict[str, str]) -> None:
        self.images = images
        self.prefix = f"v2m-test-{uuid.uuid4().hex[:8]}"
        self.ports: dict[str, int] = {}
        self.admin_ports: dict[str, int] = {}  # probes and /metrics
        self.started: dict[str, float] = {}

    def name(self, service: str) -> str:
        return f"{self.prefix}-{service}"

    def run(
        self, service: str, env: dict[str, str], *options: str, image: str | None = None
    ) -> None:
        """Start ``service`` in the background, from its own image unless ``image`` is given.

        Web services answer probes on an admin listener of their own; a worker's is its port.
        """
        port = self.ports[service] = free_port()
        admin = self.admin_ports[service] = free_port()
        settings = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
        self.started[service] = time.monotonic()
        docker(
            "run", "--detach", "--name", self.name(service), *HARDENED, *settings, *options,
            image or self.images[service], service, "--port", str(port),
            "--admin-port", str(admin),
        )  # fmt: skip

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def wait_ready(self) -> dict[str, float]:
        """Poll every container's /readyz; seconds from `docker run` to ready, by service."""
        took = {}
        for service in self.ports:

            def ready(service: str = service) -> bool:
                running = docker("inspect", "--format", "{{.State.Running}}", self.name(service))
                assert running.strip() == "true", self.logs(service)
                admin = f"http://127.0.0.1:{self.admin_ports[service]}"
                return requests.get(f"{admin}/readyz", timeout=2).status_code == 200

            wait_for(ready, 90, f"the {service} container to be ready")
            took[service] = time.monotonic() - self.started[service]
        return took

    def exec(self, service: str, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.name(service), *command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def logs(self, service: str) -> str:
        result = subprocess.run(
            ["docker", "logs", "--tail", "40", self.name(service)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout + result.stderr

    def stop(self) -> dict[str, int]:
        """SIGTERM every container (SIGKILL after 30 s); exit code by service."""
        codes = {}
        for service in self.ports:
            subprocess.run(["docker", "stop", "--time", "30", self.name(service)], check=False)
            state = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.ExitCode}}", self.name(service)],
                capture_output=True,
                text=True,
                check=False,
            )
            codes[service] = int(state.stdout.strip() or -1)
        return codes

    def remove(self) -> None:
        names = [self.name(service) for service in self.ports]
        subprocess.run(["docker", "rm", "--force", *names], capture_output=True, check=False)


@pytest.fixture
def containers(images: dict[str, str]) -> Iterator[Containers]:
    running = Containers(images)
    try:
        yield running
    finally:
        running.remove()
