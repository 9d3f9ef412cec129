"""A RabbitMQ node of a test's own (own name, ports, Erlang cookie and data under a folder), so
that what the test does to its broker never touches the machine's shared one."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from tests.support import free_port, wait_for

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # Debian's; /usr/sbin wraps it with `su rabbitmq`


class PrivateRabbitMQ:
    """Started at once and awaited; ``management`` adds the HTTP API on ``http_port``."""

    def __init__(self, folder: Path, *, management: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port, self.http_port = free_port(), free_port()
        self.node = f"v2m-test-{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        # No management listener on 15672 unless asked for, and then on a port of its own.
        plugins = "[rabbitmq_management]" if management else "[]"
        (folder / "enabled_plugins").write_text(f"{plugins}.\n")
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
            f"management.tcp.port = {self.http_port}\n"
        )
        (folder / "env.conf").write_text("")  # not the machine's rabbitmq-env.conf
        self.env = {
            "PATH": f"{RABBITMQ_BIN}:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(folder),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(folder / "pid"),
        }
        with (folder / "server.log").open("wb") as log:  # the node keeps its own copy open
            self.proc = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, stdout=log, stderr=log
            )
        wait_for(lambda: self.ctl("await_startup", "--timeout", "5"), 90, "the private RabbitMQ")

    def run(self, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with the node's environment (and ``env``): its tools find it."""
        return subprocess.run(
            command, env={**self.env, **env}, capture_output=True, text=True, timeout=300
        )

    def ctl(self, *args: str) -> str:
        """Run rabbitmqctl against our node; raise if it fails."""
        result = self.run(str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args)
        result.check_returncode()
        return result.stdout or "ok"

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")

    def messages(self) -> dict[str, int]:
        """Messages per queue, ready and unacknowledged together."""
        return self._per_queue("messages")

    def consumers(self) -> dict[str, int]:
        """Consumers per queue."""
        return self._per_queue("consumers")

    def _per_queue(self, column: str) -> dict[str, int]:
        out = self.ctl("list_queues", "name", column, "--quiet", "--no-table-headers")
        return {
            name: int(count) for name, count in (line.split() for line in out.splitlines() if line)
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ctl("stop")
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
