"""``RabbitMQBus``: the bus on RabbitMQ with pika, built for at-least-once delivery.

- Topology (declared by every service, idempotently): a durable topic exchange, one durable quorum
  queue per consumer service (``QUEUES``) with ``x-delivery-limit`` and a dead-letter exchange.
- Publishing: persistent messages, publisher confirms and ``mandatory`` routing, so a message the
  broker did not take, or that no queue would hold, is an error and never silently lost.
- Consuming: prefetch 1 and a manual ack after the handler returns. The handler runs in a worker
  thread while this thread keeps servicing the connection, so heartbeats flow during a long
  conversion and the broker does not redeliver a message that is still being worked on.
- A lost connection is re-opened with backoff; an unacked message returns to its queue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, NackError, UnroutableError

from video2mp3.adapters.bus import run_handler
from video2mp3.domain.events import Event
from video2mp3.errors import InvalidEvent, Unavailable
from video2mp3.ports.bus import DELIVERY_LIMIT, QUEUES, Handler

log = logging.getLogger(__name__)

QUORUM = {"x-queue-type": "quorum"}


def declare_topology(channel: BlockingChannel, prefix: str) -> None:
    """Declare exchanges, queues and bindings under ``prefix``; safe to repeat."""
    channel.exchange_declare(prefix, "topic", durable=True)
    channel.exchange_declare(f"{prefix}.dlx", "fanout", durable=True)
    channel.queue_declare(f"{prefix}.dead", durable=True, arguments=QUORUM)
    channel.queue_bind(f"{prefix}.dead", f"{prefix}.dlx")
    arguments = {
        **QUORUM,
        "x-delivery-limit": DELIVERY_LIMIT - 1,  # redeliveries after the first delivery
        "x-dead-letter-exchange": f"{prefix}.dlx",
    }
    for queue, bindings in QUEUES.items():
        channel.queue_declare(f"{prefix}.{queue}", durable=True, arguments=arguments)
        for key in bindings:
            channel.queue_bind(f"{prefix}.{queue}", prefix, routing_key=key)


class RabbitMQBus:
    def __init__(
        self, url: str, *, prefix: str = "video2mp3", reconnect_delay: float = 1.0
    ) -> None:
        self.prefix = prefix  # names the exchange and prefixes every queue
        self._params = pika.URLParameters(url)
        self._params.blocked_connection_timeout = 60
        self._reconnect_delay = reconnect_delay
        self._publisher: tuple[pika.BlockingConnection, BlockingChannel] | None = None
        self._publish_lock = threading.Lock()

    def _connect(self) -> tuple[pika.BlockingConnection, BlockingChannel]:
        try:
            connection = pika.BlockingConnection(self._params)
            channel = connection.channel()
            declare_topology(channel, self.prefix)
        except AMQPError as exc:
            raise Unavailable(f"broker: {exc!r}") from exc
        return connection, channel

    def publish(self, event: Event, *, transient: bool = False) -> None:
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=1 if transient else 2,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            type=event.type,
        )
        with self._publish_lock:
            # An idle publisher connection may have been dropped: reconnect once and retry.
            for attempt in (1, 2):
                if self._publisher is None:
                    connection, channel = self._connect()
                    channel.confirm_delivery()
                    self._publisher = (connection, channel)
                try:
                    self._publisher[1].basic_publish(
                        self.prefix, event.type, event.to_json(), properties, mandatory=True
                    )
                    return
                except UnroutableError:
                    raise Unavailable(f"no queue is bound to {event.type}") from None
                except NackError:
                    raise Unavailable("the broker refused the message") from None
                except AMQPError as exc:
                    self._drop_publisher()
                    if attempt == 2:
                        raise Unavailable(f"broker: {exc!r}") from exc

    def consume(self, queue: str, handler: Handler, stop: threading.Event) -> None:
        delay = self._reconnect_delay
        while not stop.is_set():
            try:
                connection, channel = self._connect()
                delay = self._reconnect_delay
                self._consume_on(connection, channel, f"{self.prefix}.{queue}", handler, stop)
                connection.close()
            except (Unavailable, AMQPError) as exc:
                log.warning("broker connection lost, reconnecting", extra={"error": repr(exc)})
                stop.wait(delay)
                delay = min(delay * 2, 30)

    def _consume_on(
        self,
        connection: pika.BlockingConnection,
        channel: BlockingChannel,
        queue: str,
        handler: Handler,
        stop: threading.Event,
    ) -> None:
        # Prefetch 1: a worker holds one message at a time, so the others go to idle workers.
        channel.basic_qos(prefetch_count=1)
        deliveries: list[tuple[int, bytes]] = []
        channel.basic_consume(
            queue, lambda _ch, method, _props, body: deliveries.append((method.delivery_tag, body))
        )
        log.info("consuming", extra={"queue": queue})
        while not stop.is_set():
            connection.process_data_events(time_limit=0.5)
            while deliveries:
                tag, body = deliveries.pop(0)
                self._deliver(connection, channel, tag, body, handler)

    def _deliver(
        self,
        connection: pika.BlockingConnection,
        channel: BlockingChannel,
        tag: int,
        body: bytes,
        handler: Handler,
    ) -> None:
        try:
            event = Event.from_json(body)
        except InvalidEvent as exc:
            log.error("dead-lettering an invalid message: %s", exc.message)
            channel.basic_reject(tag, requeue=False)
            return
        failure = _run_in_thread(lambda: run_handler(handler, event), connection)
        if failure is None:
            channel.basic_ack(tag)
        else:
            log.error(
                "handler failed; the message goes back to the queue",
                exc_info=failure,
                extra={"event_type": event.type, "job_id": event.job_id},
            )
            channel.basic_nack(tag, requeue=True)

    def ping(self) -> None:
        connection, _ = self._connect()
        connection.close()

    def close(self) -> None:
        with self._publish_lock:
            self._drop_publisher()

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            connection, self._publisher = self._publisher[0], None
            with contextlib.suppress(AMQPError):
                connection.close()


def _run_in_thread(
    work: Callable[[], None], connection: pika.BlockingConnection
) -> BaseException | None:
    """Run ``work`` in a thread while servicing ``connection``; return what it raised, if any."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except Exception as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="handler", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            connection.process_data_events(time_limit=0.5)
    finally:
        # If the connection broke, let the work finish before reconnecting: the message will be
        # redelivered, but never worked on twice at once by this worker.
        thread.join()
    return failure[0] if failure else None
