"""An asyncio producer with two-phase send: ``await send()`` waits for room in librdkafka's bounded
queue (never drops, never spins), and returns a future that resolves when the broker acknowledges.

Owns the producer and the thread that serves its delivery reports. Cancelling ``await send()`` before it
returns queues nothing; once it has returned, the message is queued and will be delivered whether or
not anyone awaits the future.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.errors import TransportError
from streams.transport.records import produce_error, produce_kwargs

_QUEUE_FULL_WAIT = 0.005


class AsyncProducer:
    """``on_fatal`` is called (from the delivery-report thread) if the producer fails for good, e.g.
    when a newer instance with the same transactional id fences it."""

    def __init__(
        self, config: dict[str, Any], on_fatal: Callable[[TransportError], None] | None = None
    ) -> None:
        self._producer = Producer(config)
        self._on_fatal = on_fatal
        self._loop: asyncio.AbstractEventLoop | None = None
        # Delivery reports collected during one poll() on the poll thread; swapped out, never shared.
        self._reports: list[tuple[asyncio.Future[Message], KafkaError | None, Message]] = []
        self._closed = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_delivery_reports, name="producer-poll", daemon=True
        )
        self._poller.start()

    @property
    def client(self) -> Producer:
        """The underlying confluent-kafka producer (transactions use it directly)."""
        return self._producer

    def _serve_delivery_reports(self) -> None:
        while not self._closed.is_set():
            try:
                self._producer.poll(0.05)
                self._hand_over_reports()
            except KafkaException as exc:
                error = TransportError(f"producer failed: {exc.args[0].str()}")
                if self._on_fatal is not None:
                    self._on_fatal(error)
                return

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Message]:
        loop = self._loop = asyncio.get_running_loop()
        delivered: asyncio.Future[Message] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            self._reports.append((delivered, error, message))  # runs on the thread serving poll()

        kwargs = produce_kwargs(value, key, headers, partition)
        while True:
            try:
                self._producer.produce(topic, on_delivery=on_delivery, **kwargs)
                return delivered
            except BufferError:
                # The local queue is full: the poll thread frees room as the broker acknowledges.
                await asyncio.sleep(_QUEUE_FULL_WAIT)
            except KafkaException as exc:
                raise produce_error(topic, exc) from exc

    def _hand_over_reports(self) -> None:
        """Settle the futures of one poll's delivery reports in a single wake-up of the loop: one
        cross-thread call per message cost more than the rest of a send."""
        if not self._reports or self._loop is None:
            return
        batch, self._reports = self._reports, []
        self._loop.call_soon_threadsafe(_settle_all, batch)

    def close(self, timeout: float = 30.0) -> int:
        """Flush (bounded) and stop the delivery-report thread; returns messages left undelivered."""
        self._closed.set()
        self._poller.join()
        remaining = int(self._producer.flush(timeout))  # serves the last reports on this thread
        self._hand_over_reports()
        return remaining


def _settle_all(batch: list[tuple[asyncio.Future[Message], KafkaError | None, Message]]) -> None:
    for future, error, message in batch:
        _settle(future, error, message)


def _settle(future: asyncio.Future[Message], error: KafkaError | None, message: Message) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(message)
    else:
        future.set_exception(
            TransportError(
                f"delivery to {message.topic()} failed: {error.str()}", retriable=error.retriable()
            )
        )
