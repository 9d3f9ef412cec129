"""KEDA's RabbitMQ user, made by the script the RabbitMQ pod runs on start, on a real broker.

The script is taken from the rendered prod manifests and run against a private RabbitMQ node
(its own port, data and Erlang cookie under a temporary directory, with the management plugin),
never the shared one: the user may read queue depths over HTTP, as KEDA does, and nothing over
AMQP; a second start changes its password.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
import requests
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker

from tests.deploy.rendered import Doc, named
from tests.support import free_port, missing, need, wait_for

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # Debian's; /usr/sbin wraps it with `su rabbitmq`


class Node:
    """A private RabbitMQ node; ``ctl`` runs rabbitmqctl (or any of its tools) against it."""

    def __init__(self, root: Path) -> None:
        self.amqp_port, self.http_port = free_port(), free_port()
        (root / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (root / "rabbitmq.conf").write_text(f"management.tcp.port = {self.http_port}\n")
        self.env = {
            **os.environ,
            "PATH": f"{RABBITMQ_BIN}:{os.environ['PATH']}",
            "HOME": str(root),  # the Erlang cookie
            "RABBITMQ_NODENAME": f"v2m-keda-{self.amqp_port}@localhost",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(root / "pid"),
        }
        self.log = (root / "server.log").open("wb")
        self.server = subprocess.Popen(
            [RABBITMQ_BIN / "rabbitmq-server"], env=self.env, stdout=self.log, stderr=self.log
        )

    def run(self, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env={**self.env, **env}, capture_output=True, text=True, timeout=300
        )

    def stop(self) -> None:
        self.run("rabbitmqctl", "stop")
        try:
            self.server.wait(60)
        except subprocess.TimeoutExpired:
            self.server.kill()
        self.log.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    need(
        "rabbitmq-server",
        lambda: (RABBITMQ_BIN / "rabbitmq-server").is_file() or missing("rabbitmq-server"),
        "apt-get install rabbitmq-server",
    )
    node = Node(tmp_path_factory.mktemp("rabbitmq"))
    try:
        wait_for(
            lambda: (
                requests.get(
                    f"http://127.0.0.1:{node.http_port}/api/overview", timeout=2
                ).status_code
                == 401
            ),  # up, and asking who we are
            120,
            "a private RabbitMQ node",
        )
        yield node
    finally:
        node.stop()


def start_script(docs: list[Doc]) -> str:
    (container,) = named(docs, "StatefulSet", "rabbitmq")["spec"]["template"]["spec"]["containers"]
    command: list[str] = container["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    return command[2]


def test_the_keda_user_reads_queue_depths_and_nothing_else(
    node: Node, manifests: Callable[[str], list[Doc]]
) -> None:
    script = start_script(manifests("prod"))
    shell = shutil.which("sh") or "sh"
    for password in ("first", "second"):  # the pod's first start, then a restart
        done = node.run(shell, "-c", script, RABBITMQ_KEDA_USER="keda", RABBITMQ_KEDA_PASS=password)
        assert done.returncode == 0, done.stderr
    admin = pika.PlainCredentials("guest", "guest")  # the node's own default user, local only
    amqp = pika.ConnectionParameters("127.0.0.1", node.amqp_port, credentials=admin)
    with pika.BlockingConnection(amqp) as connection:
        channel = connection.channel()
        channel.queue_declare("video2mp3.converter", durable=True)
        channel.basic_publish("", "video2mp3.converter", b"a job")
    api = f"http://127.0.0.1:{node.http_port}/api/queues/%2F/video2mp3.converter"
    # What KEDA's http protocol reads; the statistics arrive every few seconds.
    wait_for(
        lambda: requests.get(api, auth=("keda", "second"), timeout=10).json().get("messages") == 1,
        60,
        "the queue depth, as KEDA's user",
    )
    assert requests.get(api, auth=("keda", "first"), timeout=10).status_code == 401
    keda = pika.ConnectionParameters(
        "127.0.0.1", node.amqp_port, credentials=pika.PlainCredentials("keda", "second")
    )
    with pika.BlockingConnection(keda) as connection:
        channel = connection.channel()
        with pytest.raises(ChannelClosedByBroker, match="ACCESS_REFUSED"):
            channel.basic_get("video2mp3.converter")
    with pytest.raises(AMQPConnectionError):
        pika.BlockingConnection(
            pika.ConnectionParameters(
                "127.0.0.1", node.amqp_port, credentials=pika.PlainCredentials("keda", "first")
            )
        )
