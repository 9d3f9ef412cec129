"""KEDA's RabbitMQ user, made by the script the RabbitMQ pod runs on start, on a real broker.

The script is taken from the rendered prod manifests and run against a private RabbitMQ node
(its own port, data and Erlang cookie under a temporary directory, with the management plugin),
never the shared one: the user may read queue depths over HTTP, as KEDA does, and nothing over
AMQP; a second start changes its password.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pika
import pytest
import requests
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker

from tests.deploy.rendered import Doc, named
from tests.rabbitmq import RABBITMQ_BIN, PrivateRabbitMQ
from tests.support import missing, need, wait_for


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    need(
        "rabbitmq-server",
        lambda: (RABBITMQ_BIN / "rabbitmq-server").is_file() or missing("rabbitmq-server"),
        "apt-get install rabbitmq-server",
    )
    node = PrivateRabbitMQ(tmp_path_factory.mktemp("rabbitmq"), management=True)
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
        node.close()


def start_script(docs: list[Doc]) -> str:
    (container,) = named(docs, "StatefulSet", "rabbitmq")["spec"]["template"]["spec"]["containers"]
    command: list[str] = container["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    return command[2]


def test_the_keda_user_reads_queue_depths_and_nothing_else(
    node: PrivateRabbitMQ, manifests: Callable[[str], list[Doc]]
) -> None:
    script = start_script(manifests("prod"))
    shell = shutil.which("sh") or "sh"
    for password in ("first", "second"):  # the pod's first start, then a restart
        done = node.run(shell, "-c", script, RABBITMQ_KEDA_USER="keda", RABBITMQ_KEDA_PASS=password)
        assert done.returncode == 0, done.stderr
    admin = pika.PlainCredentials("guest", "guest")  # the node's own default user, local only
    amqp = pika.ConnectionParameters("127.0.0.1", node.port, credentials=admin)
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
        "127.0.0.1", node.port, credentials=pika.PlainCredentials("keda", "second")
    )
    with pika.BlockingConnection(keda) as connection:
        channel = connection.channel()
        with pytest.raises(ChannelClosedByBroker, match="ACCESS_REFUSED"):
            channel.basic_get("video2mp3.converter")
    with pytest.raises(AMQPConnectionError):
        pika.BlockingConnection(
            pika.ConnectionParameters(
                "127.0.0.1", node.port, credentials=pika.PlainCredentials("keda", "first")
            )
        )
