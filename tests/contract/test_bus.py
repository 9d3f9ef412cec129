"""One contract for both buses: routing, ack after the handler, redelivery, dead letters.

The RabbitMQ suite runs on the real broker, each test under its own exchange/queue prefix.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest

from tests.support import rabbitmqctl, wait_for
from video2mp3.adapters.bus.inprocess import InProcessBus
from video2mp3.adapters.bus.rabbitmq import RabbitMQBus, declare_topology
from video2mp3.domain.events import ConversionProgress, ConversionRequested, Event, Owner
from video2mp3.errors import Unavailable
from video2mp3.ports.bus import DELIVERY_LIMIT, QUEUES, Bus


def requested(job: str = "job") -> Event:
    return Event(job, ConversionRequested("fid", Owner(1, "a@x"), "a.mp4"))


class Consumer:
    """Runs ``bus.consume`` in a thread and records what the handler saw."""

    def __init__(self, bus: Bus, queue: str, handler: Callable[[Event], None] | None = None):
        self.seen: list[Event] = []
        self.given_up: list[tuple[Event, Exception]] = []
        self.stop = threading.Event()

        def handle(event: Event) -> None:
            self.seen.append(event)
            if handler:
                handler(event)

        def give_up(event: Event, error: Exception) -> None:
            self.given_up.append((event, error))

        self.thread = threading.Thread(target=bus.consume, args=(queue, handle, self.stop, give_up))
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def nothing_left(bus: Bus, queue: str) -> None:
    """Assert that no event waits in ``queue`` (nor comes back to it): a sentinel published now
    is the next delivery. A fact in place of a pause that hopes nothing more arrives."""
    sentinel = {
        "converter": requested("sentinel"),
        "gateway": Event("sentinel", ConversionProgress(0.0)),
    }[queue]
    bus.publish(sentinel)
    consumer = Consumer(bus, queue)
    try:
        wait_for(lambda: consumer.seen, 10, f"the sentinel on {queue}")
    finally:
        consumer.close()
    assert consumer.seen[0].job_id == "sentinel", [e.job_id for e in consumer.seen]


class BusContract:
    @pytest.fixture
    def bus(self) -> Bus:
        raise NotImplementedError

    def dead_letters(self, bus: Bus) -> list[bytes]:
        raise NotImplementedError

    def publish_raw(self, bus: Bus, queue: str, body: bytes) -> None:
        raise NotImplementedError

    def test_events_reach_the_bound_queues_only(self, bus: Bus) -> None:
        converter, gateway = Consumer(bus, "converter"), Consumer(bus, "gateway")
        try:
            bus.publish(requested("one"))
            bus.publish(Event("one", ConversionProgress(0.5)), transient=True)
            wait_for(lambda: converter.seen and gateway.seen, 10, "deliveries")
        finally:
            converter.close()
            gateway.close()
        nothing_left(bus, "converter")
        nothing_left(bus, "gateway")
        assert [e.type for e in converter.seen] == ["conversion.requested"]
        assert [e.type for e in gateway.seen] == ["conversion.progress"]
        assert converter.seen[0].data == requested("one").data

    def test_a_failing_handler_gets_the_event_again_then_it_is_dead_lettered(
        self, bus: Bus
    ) -> None:
        def fail(event: Event) -> None:
            raise RuntimeError("boom")

        consumer = Consumer(bus, "converter", fail)
        try:
            bus.publish(requested("poison"))
            wait_for(lambda: len(consumer.seen) >= DELIVERY_LIMIT, 30, "redeliveries")
            wait_for(lambda: self.dead_letters(bus), 10, "the dead letter")
        finally:
            consumer.close()
        nothing_left(bus, "converter")
        assert len(consumer.seen) == DELIVERY_LIMIT
        assert {e.job_id for e in consumer.seen} == {"poison"}
        [(event, error)] = consumer.given_up
        assert (event.job_id, str(error)) == ("poison", "boom")

    def test_an_outage_is_waited_out_in_place_without_spending_deliveries(self, bus: Bus) -> None:
        outage = iter(range(DELIVERY_LIMIT + 2))  # more failures than the delivery limit

        def flaky(event: Event) -> None:
            if next(outage, None) is not None:
                raise Unavailable("database: connection refused")

        consumer = Consumer(bus, "converter", flaky)
        try:
            bus.publish(requested("patient"))
            wait_for(lambda: len(consumer.seen) == DELIVERY_LIMIT + 3, 30, "the outage to end")
        finally:
            consumer.close()
        nothing_left(bus, "converter")
        assert len(consumer.seen) == DELIVERY_LIMIT + 3
        assert consumer.given_up == []
        assert self.dead_letters(bus) == []

    def test_consumers_counts_every_consumer_of_a_queue(self, bus: Bus) -> None:
        assert bus.consumers("segments") == 0
        first, second = Consumer(bus, "segments"), Consumer(bus, "segments")
        try:
            wait_for(lambda: bus.consumers("segments") == 2, 10, "two consumers")
            assert bus.consumers("converter") == 0
        finally:
            first.close()
            second.close()
        wait_for(lambda: bus.consumers("segments") == 0, 10, "no consumer")

    def test_handler_success_acks_once(self, bus: Bus) -> None:
        consumer = Consumer(bus, "converter")
        try:
            bus.publish(requested("a"))
            bus.publish(requested("b"))
            wait_for(lambda: len(consumer.seen) == 2, 10, "two deliveries")
        finally:
            consumer.close()
        nothing_left(bus, "converter")  # acked: nothing comes back
        assert sorted(e.job_id for e in consumer.seen) == ["a", "b"]

    @pytest.mark.parametrize(
        "body",
        [
            b"\x00garbage",
            b'{"type": "conversion.progress", "job_id": "j", "event_id": "e",'
            b' "occurred_at": "t", "data": null}',
            # Bodies whose decoding fails past the usual errors (an overflow, the recursion
            # limit): never settled, they held a consumer's prefetch slot for good.
            b'{"type": "conversion.progress", "job_id": "j", "event_id": "e",'
            b' "occurred_at": "t", "version": Infinity, "data": {"progress": 0.5}}',
            b"[" * 100_000 + b"]" * 100_000,
        ],
        ids=["garbage", "null data", "infinite version", "nested too deep"],
    )
    def test_an_invalid_body_is_dead_lettered_and_the_consumer_goes_on(
        self, bus: Bus, body: bytes
    ) -> None:
        consumer = Consumer(bus, "converter")
        try:
            self.publish_raw(bus, "converter", body)
            bus.publish(requested("after"))
            wait_for(lambda: consumer.seen, 10, "the valid event")
            wait_for(lambda: self.dead_letters(bus), 10, "the dead letter")
        finally:
            consumer.close()
        assert [e.job_id for e in consumer.seen] == ["after"]
        assert body in self.dead_letters(bus)


class TestInProcessBus(BusContract):
    @pytest.fixture
    def bus(self) -> Bus:
        return InProcessBus(retry_base=0.01)

    def dead_letters(self, bus: Bus) -> list[bytes]:
        assert isinstance(bus, InProcessBus)
        return bus.dead_letters

    def publish_raw(self, bus: Bus, queue: str, body: bytes) -> None:
        assert isinstance(bus, InProcessBus)
        bus.put_raw(queue, body)


class TestRabbitMQBus(BusContract):
    @pytest.fixture
    def bus(self, amqp_url: str) -> Iterator[Bus]:
        bus = RabbitMQBus(amqp_url, prefix=f"v2m-test-{uuid.uuid4().hex[:8]}", retry_base=0.01)
        bus.ping()  # declares the topology
        yield bus
        bus.close()
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            channel = connection.channel()
            for queue in [*QUEUES, "dead"]:
                channel.queue_delete(f"{bus.prefix}.{queue}")
            channel.exchange_delete(bus.prefix)
            channel.exchange_delete(f"{bus.prefix}.dlx")

    def dead_letters(self, bus: Bus) -> list[bytes]:
        assert isinstance(bus, RabbitMQBus)
        with pika.BlockingConnection(bus._params) as connection:
            channel = connection.channel()
            bodies = []
            while True:
                method, _, body = channel.basic_get(f"{bus.prefix}.dead", auto_ack=False)
                if method is None:
                    return bodies
                bodies.append(body)

    def publish_raw(self, bus: Bus, queue: str, body: bytes) -> None:
        assert isinstance(bus, RabbitMQBus)
        with pika.BlockingConnection(bus._params) as connection:
            connection.channel().basic_publish("", f"{bus.prefix}.{queue}", body)

    def test_a_stopping_consumer_finishes_its_message_and_takes_no_other(self, bus: Bus) -> None:
        assert isinstance(bus, RabbitMQBus)
        for n in range(5):
            bus.publish(requested(f"job{n}"))
        consumer = Consumer(bus, "converter", lambda e: time.sleep(0.3))
        wait_for(lambda: consumer.seen, 10, "the first delivery")
        consumer.close()  # stop while the first is in hand
        assert [e.job_id for e in consumer.seen] == ["job0"]
        with pika.BlockingConnection(bus._params) as connection:
            queue = connection.channel().queue_declare(f"{bus.prefix}.converter", passive=True)
        assert queue.method.message_count == 4  # job0 acked; the rest back in the queue

    def test_unreachable_broker_is_unavailable(self) -> None:
        bus = RabbitMQBus("amqp://guest:guest@127.0.0.1:1/%2F")
        with pytest.raises(Unavailable):
            bus.publish(requested())
        with pytest.raises(Unavailable):
            bus.ping()

    def test_heartbeats_keep_the_connection_through_a_long_handler(
        self, bus: Bus, amqp_url: str
    ) -> None:
        """A handler busy for three and a half heartbeat intervals: the broker keeps the very same
        connection (missed heartbeats would close it; the consumer would come back on a new one).
        Intervals of 2 s, not 1: a loaded machine must not starve a correct consumer."""
        assert isinstance(bus, RabbitMQBus)
        bus.publish(requested("slow"))
        bus.close()  # from here on, the consumer's is the only connection with this prefix
        slow_bus = RabbitMQBus(amqp_url + "?heartbeat=2", prefix=bus.prefix)
        handled = threading.Event()

        def slow(event: Event) -> None:
            time.sleep(7)
            handled.set()

        consumer = Consumer(slow_bus, "converter", slow)
        try:
            wait_for(lambda: consumer.seen, 10, "the delivery")
            during = connections(bus.prefix)
            assert len(during) == 1, during
            wait_for(handled.is_set, 30, "the handler to finish")
            after = connections(bus.prefix)
        finally:
            consumer.close()
        assert after == during
        assert [e.job_id for e in consumer.seen] == ["slow"]

    def test_consumer_and_publisher_reconnect_after_the_broker_drops_them(self, bus: Bus) -> None:
        """What a broker restart does to clients: their connections closed under them."""
        assert isinstance(bus, RabbitMQBus)
        consumer = Consumer(bus, "converter")
        try:
            bus.publish(requested("before"))
            wait_for(lambda: consumer.seen, 10, "the first delivery")
            assert drop_connections(bus.prefix) == 2  # the consumer's and the publisher's
            bus.publish(requested("after"))
            wait_for(lambda: len(consumer.seen) == 2, 30, "a delivery after reconnecting")
        finally:
            consumer.close()
        assert [e.job_id for e in consumer.seen] == ["before", "after"]

    def test_consumer_comes_back_when_its_queue_is_recreated(self, bus: Bus, amqp_url: str) -> None:
        assert isinstance(bus, RabbitMQBus)
        consumer = Consumer(bus, "converter")
        try:
            wait_for(lambda: _consumers(amqp_url, f"{bus.prefix}.converter") == 1, 10, "a consumer")
            with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
                connection.channel().queue_delete(f"{bus.prefix}.converter")
            time.sleep(1)  # the consumer learns of the cancel; then an operator re-creates it
            with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
                declare_topology(connection.channel(), bus.prefix)
            wait_for(
                lambda: _consumers(amqp_url, f"{bus.prefix}.converter") == 1, 30, "re-consuming"
            )
            bus.publish(requested("after"))
            wait_for(lambda: consumer.seen, 10, "a delivery from the new queue")
        finally:
            consumer.close()

    def test_a_ping_reuses_one_connection_and_survives_its_loss(self, bus: Bus) -> None:
        """Probes every few seconds must not open (and declare) a connection each time."""
        assert isinstance(bus, RabbitMQBus)
        for _ in range(3):
            bus.ping()
        assert len(connections(bus.prefix)) == 1
        assert drop_connections(bus.prefix) == 1
        bus.ping()  # reconnects at once instead of reporting the dropped connection
        assert len(connections(bus.prefix)) == 1


def _consumers(amqp_url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        return int(connection.channel().queue_declare(queue, passive=True).method.consumer_count)


def connections(prefix: str) -> list[str]:
    """The broker's ids of the open connections of buses with ``prefix``."""
    listed = rabbitmqctl("list_connections", "pid", "client_properties", "-q", "--no-table-headers")
    marker = f'{{"connection_name","{prefix} '
    return [line.split("\t")[0] for line in listed.splitlines() if marker in line]


def drop_connections(prefix: str) -> int:
    """Close every broker connection of the bus with ``prefix``; return how many."""
    pids = connections(prefix)
    for pid in pids:
        rabbitmqctl("close_connection", pid, "video2mp3 test: broker restart")
    return len(pids)
