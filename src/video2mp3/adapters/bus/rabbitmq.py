"""``RabbitMQBus``: the bus on RabbitMQ with pika, built for at-least-once delivery.

- Topology (declared by every service, idempotently): a durable topic exchange, one durable quorum
  queue per consumer service (``QUEUES``) with ``x-delivery-limit`` and a dead-letter exchange.
- Publishing: persistent messages, publisher confirms and ``mandatory`` routing, so a message the
  broker did not take, or that no queue would hold, is an error and never silently lost.
- Consuming: a prefetch of ``CONCURRENCY[queue]`` (1 for converters) and a manual ack after the
  handler returns. Handlers run in worker threads while one thread keeps servicing the connection,
  so heartbeats flow during a long conversion and the broker does not redeliver a message that is
  still being worked on; a settled message wakes that thread, so the next one starts at once.
- A failed event goes back to its queue after a growing delay (``x-delivery-count`` says how
  often it was delivered); after the last try, ``give_up`` runs and it is dead-lettered.
- A lost connection or a cancelled consumer is re-opened with backoff; an unacked message returns
  to its queue.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, NackError, UnroutableError
from pika.spec import Basic, BasicProperties

from video2mp3.adapters.bus import Outcome, deliver, process, retry_delay
from video2mp3.backoff import Backoff
from video2mp3.domain.events import Event
from video2mp3.errors import InvalidEvent, NotPublished, Unavailable
from video2mp3.ports.bus import CONCURRENCY, DELIVERY_LIMIT, QUEUES, GiveUp, Handler

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


# Most seconds between a consumer's attempts to reconnect: a broker back from an outage (or a
# restart, whose queues need a moment before they can be declared) is noticed within this, so
# that a service is consuming again a few seconds after the broker is.
RECONNECT_CAP = 4.0


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
                channel = self._publisher_channel()
                try:
                    channel.basic_publish(
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
        backoff = Backoff(first=self._reconnect_delay, cap=RECONNECT_CAP)
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
        # This thread only services the connection (heartbeats flow however long a handler
        # runs); handlers run in a pool and settle their message through a thread-safe callback,
        # which also wakes this loop, so the next message is taken as soon as one is settled.
        concurrency = CONCURRENCY.get(queue.removeprefix(f"{self.prefix}."), 1)
        channel.basic_qos(prefetch_count=concurrency)
        cancelled = threading.Event()
        channel.add_on_cancel_callback(lambda _frame: cancelled.set())
        in_hand: set[Future[None]] = set()
        with ThreadPoolExecutor(concurrency, thread_name_prefix="handler") as pool:

            def on_message(
                _ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
            ) -> None:
                if stop.is_set():  # sent before our cancel reached the broker: not ours to start
                    channel.basic_nack(method.delivery_tag, requeue=True)
                    return
                count = (props.headers or {}).get("x-delivery-count", 0) + 1
                delivery = _Delivery(method.delivery_tag, count, body)
                work = (connection, channel, delivery, handler, give_up, stop)
                in_hand.add(pool.submit(self._deliver, *work))

            tag = channel.basic_consume(queue, on_message)
            log.info("consuming", extra={"queue": queue, "concurrency": concurrency})
            try:
                while not stop.is_set() and not cancelled.is_set():
                    connection.process_data_events(time_limit=1)
                    in_hand -= {f for f in in_hand if f.done()}
                if not cancelled.is_set():
                    # No new deliveries (each settled one would free a prefetch slot); pika
                    # requeues those it holds but has not handed to on_message yet.
                    channel.basic_cancel(tag)
                # Let the messages in hand be settled before the connection closes: each settle
                # is a callback this thread runs.
                while any(not f.done() for f in in_hand):
                    connection.process_data_events(time_limit=0.1)
                connection.process_data_events(time_limit=0)
            finally:
                # If the connection broke, the handlers still finish (their messages will be
                # redelivered) before we reconnect: an event is never worked on twice at once
                # by this consumer.
                wait(in_hand)
        if cancelled.is_set():
            raise _Cancelled(queue)

    def _deliver(
        self,
        connection: pika.BlockingConnection,
        channel: BlockingChannel,
        delivery: _Delivery,
        handler: Handler,
        give_up: GiveUp | None,
        stop: threading.Event,
    ) -> None:
        """Handle one delivery in a pool thread, then settle it on the connection's thread."""
        try:
            event = Event.from_json(delivery.body)
        except InvalidEvent as exc:
            log.error("dead-lettering an invalid message: %s", exc.message)
            outcome = Outcome.DEAD
        else:
            count = min(delivery.count, DELIVERY_LIMIT)
            outcome = deliver(
                lambda: process(event, count, handler, give_up),
                lambda seconds: not stop.wait(seconds),
                self.retry_base,
            )
            if outcome is Outcome.RETRY:
                stop.wait(retry_delay(count, self.retry_base))
        tag = delivery.tag
        settle: Callable[[], None]
        if outcome is Outcome.ACK:
            settle = functools.partial(channel.basic_ack, tag)
        else:
            # reject, not nack: from RabbitMQ 4.3 only a reject raises x-delivery-count
            settle = functools.partial(channel.basic_reject, tag, requeue=outcome is Outcome.RETRY)
        try:
            connection.add_callback_threadsafe(settle)
        except (AMQPError, RuntimeError) as exc:  # the connection is gone: it is redelivered
            log.warning("could not settle a message", extra={"error": repr(exc)})

    def _publisher_channel(self) -> BlockingChannel:
        """The publisher's confirming channel, connected (and the topology declared) if need be.

        Call with ``_publish_lock`` held.
        """
        if self._publisher is None:
            connection, channel = self._connect()
            channel.confirm_delivery()
            self._publisher = (connection, channel)
        return self._publisher[1]

    def consumers(self, queue: str) -> int:
        with self._publish_lock:
            try:
                declared = self._publisher_channel().queue_declare(
                    f"{self.prefix}.{queue}", passive=True
                )
            except AMQPError as exc:
                self._drop_publisher()
                raise Unavailable(f"broker: {exc!r}") from exc
        return int(declared.method.consumer_count)

    def ping(self) -> None:
        # On the publisher's connection, kept open: a ping costs a round of heartbeats, not a
        # connection and a topology declaration, and it keeps an idle publisher connected.
        with self._publish_lock:
            self._publisher_channel()
            assert self._publisher is not None
            try:
                self._publisher[0].process_data_events(time_limit=0)
            except AMQPError:
                # Dropped while idle (a broker restart): the broker's state is what a fresh
                # connection finds, not what the stale one says.
                self._drop_publisher()
                self._publisher_channel()

    def close(self) -> None:
        with self._publish_lock:
            self._drop_publisher()

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            connection, self._publisher = self._publisher[0], None
            with contextlib.suppress(AMQPError):
                connection.close()
