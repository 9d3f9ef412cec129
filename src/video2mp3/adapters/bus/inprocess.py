"""``InProcessBus``: the bus inside one process, for ``video2mp3 dev`` and unit tests.

Same routing (``QUEUES``) and the same delivery rules as RabbitMQ: redelivery on a handler error
up to ``DELIVERY_LIMIT``, then a dead-letter list. Nothing survives a restart.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from queue import Empty, Queue

from video2mp3.adapters.bus import Outcome, deliver, process, queues_for, retry_delay
from video2mp3.domain.events import Event
from video2mp3.errors import InvalidEvent, NotPublished
from video2mp3.ports.bus import CONCURRENCY, QUEUES, GiveUp, Handler

log = logging.getLogger(__name__)


class InProcessBus:
    def __init__(self, *, retry_base: float = 1.0) -> None:
        self.retry_base = retry_base
        self._queues: dict[str, Queue[tuple[bytes, int]]] = {name: Queue() for name in QUEUES}
        self.dead_letters: list[bytes] = []
        self._consumers: Counter[str] = Counter()
        self._lock = threading.Lock()

    def publish(self, event: Event, *, transient: bool = False) -> None:
        targets = queues_for(event.type)
        if not targets:
            raise NotPublished(f"no queue is bound to {event.type}")
        body = event.to_json()
        for name in targets:
            self._queues[name].put((body, 1))

    def put_raw(self, queue_name: str, body: bytes) -> None:
        """Enqueue an arbitrary body, as a misbehaving publisher could."""
        self._queues[queue_name].put((body, 1))

    def consume(
        self, queue: str, handler: Handler, stop: threading.Event, give_up: GiveUp | None = None
    ) -> None:
        workers = [
            threading.Thread(
                target=self._work, args=(queue, handler, stop, give_up), name=f"{queue}-{n}"
            )
            for n in range(CONCURRENCY.get(queue, 1))
        ]
        with self._lock:
            self._consumers[queue] += 1
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        finally:
            with self._lock:
                self._consumers[queue] -= 1

    def consumers(self, queue: str) -> int:
        with self._lock:
            return self._consumers[queue]

    def _work(
        self, queue: str, handler: Handler, stop: threading.Event, give_up: GiveUp | None
    ) -> None:
        pending = self._queues[queue]
        while not stop.is_set():
            try:
                body, delivery = pending.get(timeout=0.1)
            except Empty:
                continue
            try:
                event = Event.from_json(body)
            except InvalidEvent as exc:
                log.error("dead-lettering an invalid message: %s", exc.message)
                self.dead_letters.append(body)
                continue
            outcome = deliver(
                lambda: process(event, delivery, handler, give_up),  # noqa: B023 - called here
                lambda seconds: not stop.wait(seconds),
                self.retry_base,
            )
            if outcome is Outcome.RETRY:
                stop.wait(retry_delay(delivery, self.retry_base))
                pending.put((body, delivery + 1))
            elif outcome is Outcome.DEAD:
                self.dead_letters.append(body)

    def depth(self, queue: str) -> int:
        return self._queues[queue].qsize()

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
