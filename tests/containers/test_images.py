"""The four images, built and run: who they run as, what they carry, and a user's whole journey
through hardened containers of them on this machine's MariaDB and RabbitMQ, a MongoDB wire
protocol server and an SMTP server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.containers.conftest import HARDENED, TARGETS, Containers, docker
from tests.contract.test_mail import Inbox
from tests.deploy.test_locks import LOCKS, read_lock
from tests.e2e.flow import run_journey
from tests.e2e.test_distributed import delete_topology
from tests.support import free_port


@pytest.mark.parametrize("target", TARGETS)
def test_the_user_and_its_group_are_fixed(images: dict[str, str], target: str) -> None:
    """`--user 10001` alone (Kubernetes' runAsUser without runAsGroup) still gets group 10001."""
    assert docker("image", "inspect", "--format", "{{.Config.User}}", images[target]).strip() == (
        "10001:10001"
    )
    script = "id -u; id -g; stat -c %u:%g /run/secrets/jwt"
    out = docker(
        "run", "--rm", "--user", "10001", "--entrypoint", "sh", images[target], "-c", script
    )
    assert out.split() == ["10001", "10001", "10001:10001"]


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_holds_exactly_its_lock(images: dict[str, str], target: str) -> None:
    lock = "converter.lock" if target == "converter" else "web.lock"
    wanted = {name: pin.version for name, pin in read_lock((LOCKS / lock).read_text()).items()}
    frozen = docker("run", "--rm", "--entrypoint", "pip", images[target], "freeze", "--all")
    installed = {
        canonicalize_name(name): Version(version)
        for name, version in re.findall(r"(?m)^([A-Za-z0-9._-]+)==(\S+)$", frozen)
    }
    assert re.search(r"(?m)^video2mp3 @ file:///src$", frozen)  # the package, without a pin
    installed.pop("pip")  # the venv's own
    assert installed == wanted


def test_a_users_journey_through_hardened_containers(
    images: dict[str, str],
    containers: Containers,
    amqp_url: str,
    mongodb_url: str,
    new_mysql_database: Callable[[], str],
    samples: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Sign up, log in, upload, convert, get the email, download and check the MP3s."""
    # As compose's key makers do: the auth image makes the first keys in empty volumes.
    for folder, kind in (("keys", []), ("links", ["--links"])):
        (tmp_path / folder).mkdir()
        (tmp_path / folder).chmod(0o1777)  # like /tmp: the container's user makes its key here
        docker(
            "run", "--rm", *HARDENED, "--volume", f"{tmp_path / folder}:/run/secrets/{folder}",
            "--entrypoint", "video2mp3", images["auth"], "keygen", *kind, f"/run/secrets/{folder}",
        )  # fmt: skip
        assert len(list((tmp_path / folder).iterdir())) == 1
    keys = tmp_path / "keys"
    links = ("--volume", f"{tmp_path / 'links'}:/links:ro")
    link_keys = {"VIDEO2MP3_LINK_KEY_DIR": "/links"}

    prefix = f"v2m-images-{uuid.uuid4().hex[:8]}"
    bus = {"VIDEO2MP3_BROKER_URL": amqp_url, "VIDEO2MP3_BROKER_PREFIX": prefix}
    blobs = {"VIDEO2MP3_MONGODB_URL": mongodb_url}
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        containers.run(
            "auth",
            {"VIDEO2MP3_AUTH_DB_URL": new_mysql_database(), "VIDEO2MP3_JWT_KEY_DIR": "/keys"},
            "--volume",
            f"{keys}:/keys:ro",
        )
        jobs = {"VIDEO2MP3_JOBS_DB_URL": new_mysql_database()}
        containers.run(
            "gateway",
            {**jobs, "VIDEO2MP3_AUTH_URL": containers.url("auth"), **blobs, **link_keys},
            *links,
        )
        # The gateway's outbox relay and job tracker: the same image, another command.
        containers.run("gateway-worker", {**jobs, **bus, **blobs}, image=images["gateway"])
        containers.run("converter", {**bus, **blobs})
        containers.run(
            "notifier",
            {
                **bus,
                "VIDEO2MP3_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
                "VIDEO2MP3_MAIL_FROM": "video2mp3 <noreply@example.com>",
                "VIDEO2MP3_PUBLIC_URL": containers.url("gateway"),
                "VIDEO2MP3_NOTIFIER_DB_URL": new_mysql_database(),
                **link_keys,
            },
            *links,
        )
        ready_after = containers.wait_ready()
        run_journey(containers.url("gateway"), samples, lambda: list(inbox.messages), tmp_path)

        for service in ready_after:
            status = containers.exec(service, "cat", "/proc/1/status").stdout
            assert re.search(r"(?m)^CapEff:\s+0+$", status), service
            assert re.search(r"(?m)^NoNewPrivs:\s+1$", status), service
            write = containers.exec(service, "touch", "/opt/venv/written")
            assert "Read-only file system" in write.stderr, (service, write)
        exit_codes = containers.stop()
        assert exit_codes == dict.fromkeys(ready_after, 0), {
            service: containers.logs(service) for service, code in exit_codes.items() if code
        }
    finally:
        smtp.stop()
        delete_topology(amqp_url, prefix)
