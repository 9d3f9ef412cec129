"""``RabbitMQBus``: the bus on RabbitMQ with pika, built for at-least-once delivery.

- Topology (declared by every service, idempotently): a durable topic exchange, one durable quorum
  queue per consumer service (``QUEUES``) with ``x-delivery-limit`` and a dead-letter exchange.
- Publishing: persistent messages, publisher confirms and ``mandatory`` routing, so a message the
  broker did not take, or that no queue would hold, is an error and never silently lost.
- Consuming: prefetch 1 and a manual ack after the handler returns. The handler runs in a worker
  thread while this thread keeps servicing the connection, so heartbeats flow during a long
  conversion and the broker does not redeliver a message that is still being worked on.
- A failed event goes back to its queue after a growing delay (``x-delivery-count`` says how
  often it was delivered); after the last try, ``give_up`` runs and it is dead-lettered.
- A lost connection or a cancelled consumer is re-opened with backoff; an unacked message returns
  to its queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, NackError, UnroutableError

from video2mp3.adapters.bus import Outcome, deliver, process, retry_delay
from video2mp3.backoff import Backoff
from video2mp3.domain.events import Event
from video2mp3.errors import InvalidEvent, NotPublished, Unavailable
from video2mp3.ports.bus import DELIVERY_LIMIT, QUEUES, GiveUp, Handler

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


@dataclass
class _Delivery:
    tag: int
    count: int  # 1 on the first delivery
    body: bytes


class _Cancelled(Exception):
    """The broker cancelled our consumer (its queue was deleted, or it failed over)."""


class RabbitMQBus:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "video2mp3",
        reconnect_delay: float = 1.0,
        retry_base: float = 1.0,
    ) -> None:
        self.prefix = prefix  # names the exchange and prefixes every queue
        self.retry_base = retry_base
        self._params = pika.URLParameters(url)
        self._params.blocked_connection_timeout = 60
        # Named connections let an operator (or a test) tell ours apart in rabbitmqctl.
        self._params.client_properties = {
            "connection_name": f"{prefix} {socket.gethostname()} {os.getpid()}"
        }
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
                    raise NotPublished(f"no queue is bound to {event.type}") from None
                except NackError:
                    raise NotPublished("the broker refused the message") from None
                except AMQPError as exc:
                    self._drop_publisher()
                    if attempt == 2:
                        raise Unavailable(f"broker: {exc!r}") from exc

    def consume(
        self, queue: str, handler: Handler, stop: threading.Event, give_up: GiveUp | None = None
    ) -> None:
        backoff = Backoff(first=self._reconnect_delay)
        while not stop.is_set():
            connection = None
            try:
                connection, channel = self._connect()
                backoff.reset()
                self._consume_on(
                    connection, channel, f"{self.prefix}.{queue}", handler, give_up, stop
                )
            except (Unavailable, AMQPError, _Cancelled) as exc:
                log.warning("broker connection lost, reconnecting", extra={"error": repr(exc)})
            except Exception:  # a bug of ours must not end consumption for good
                log.exception("consumer failed, reconnecting")
            finally:
                # Closing hands any unacked message back to the queue.
                if connection is not None and connection.is_open:
                    with contextlib.suppress(AMQPError):
                        connection.close()
            stop.wait(backoff.next())

    def _consume_on(
        self,
        connection: pika.BlockingConnection,
        channel: BlockingChannel,
        queue: str,
        handler: Handler,
        give_up: GiveUp | None,
        stop: threading.Event,
    ) -> None:
        # Prefetch 1: a worker holds one message at a time, so the others go to idle workers.
        channel.basic_qos(prefetch_count=1)
        deliveries: list[_Delivery] = []
        cancelled = threading.Event()
        channel.add_on_cancel_callback(lambda _frame: cancelled.set())
        channel.basic_consume(
            queue,
            lambda _ch, method, props, body: deliveries.append(
                _Delivery(
                    method.delivery_tag, (props.headers or {}).get("x-delivery-count", 0) + 1, body
                )
            ),
        )
        log.info("consuming", extra={"queue": queue})
        while not stop.is_set():
            connection.process_data_events(time_limit=0.5)
            if cancelled.is_set():
                raise _Cancelled(queue)
            while deliveries:
                self._deliver(connection, channel, deliveries.pop(0), handler, give_up, stop)

    def _deliver(
        self,
        connection: pika.BlockingConnection,
        channel: BlockingChannel,
        delivery: _Delivery,
        handler: Handler,
        give_up: GiveUp | None,
        stop: threading.Event,
    ) -> None:
        try:
            event = Event.from_json(delivery.body)
        except InvalidEvent as exc:
            log.error("dead-lettering an invalid message: %s", exc.message)
            channel.basic_reject(delivery.tag, requeue=False)
            return
        count = min(delivery.count, DELIVERY_LIMIT)
        outcome = deliver(
            lambda: _run_in_thread(lambda: process(event, count, handler, give_up), connection),
            lambda seconds: _pause(connection, seconds, stop),
            self.retry_base,
        )
        if outcome is Outcome.ACK:
            channel.basic_ack(delivery.tag)
        elif outcome is Outcome.RETRY:
            _pause(connection, retry_delay(count, self.retry_base), stop)
            # reject, not nack: from RabbitMQ 4.3 only a reject raises x-delivery-count
            channel.basic_reject(delivery.tag, requeue=True)
        else:
            channel.basic_reject(delivery.tag, requeue=False)

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


def _pause(connection: pika.BlockingConnection, seconds: float, stop: threading.Event) -> bool:
    """Wait ``seconds`` while servicing heartbeats; False (at once) when the consumer stops."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        connection.sleep(min(left, 0.5))
    return not stop.is_set()


def _run_in_thread(work: Callable[[], Outcome], connection: pika.BlockingConnection) -> Outcome:
    """Run ``work`` in a thread while servicing ``connection``, so heartbeats keep flowing."""
    result: list[Outcome] = []

    def target() -> None:
        try:
            result.append(work())
        except BaseException:  # process() catches Exception; anything else is a retry
            log.exception("delivery failed")

    thread = threading.Thread(target=target, name="handler", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            connection.process_data_events(time_limit=0.5)
    finally:
        # If the connection broke, let the work finish before reconnecting: the message will be
        # redelivered, but never worked on twice at once by this worker.
        thread.join()
    return result[0] if result else Outcome.RETRY
