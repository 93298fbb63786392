"""An asyncio producer with two-phase send: ``await send()`` waits for room in librdkafka's bounded
queue (never drops, never spins), and returns a future that resolves when the broker acknowledges.
``send_reported()`` does the same with a report callback instead of a future (the workers' hot
path: one callback counts all the outputs of one input).

Delivery reports are served on the event loop itself, by ``poll(0)`` on a short timer while outputs
await acknowledgement (and a slow one otherwise, for errors): each report is called right there. A
thread of its own blocking in ``poll()`` would take the GIL once per report and wake the loop from
outside; under load that contention cost more than the sends. Reports served on another thread (a
transaction's commit flushes on an executor, ``close()`` flushes on the caller's) are handed to the
loop in one batch.

Cancelling ``await send()`` before it returns queues nothing; once it has returned, the message is
queued and will be delivered whether or not anyone awaits the future.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.errors import TransportError
from streams.transport.records import produce_error

_QUEUE_FULL_WAIT = 0.005
# While outputs await acknowledgement: how soon the loop asks for their reports. The broker round trip
# (plus linger) is milliseconds, so waiting longer only delays commits; asking sooner finds nothing.
_POLL_BUSY = 0.002
# With nothing outstanding: still serve error and statistics callbacks now and then.
_POLL_IDLE = 0.25

Report = tuple[Callable[[TransportError | None], None], KafkaError | None, Message]


class AsyncProducer:
    """``on_fatal`` is called if the producer fails for good, e.g. when a newer instance with the same
    transactional id fences it."""

    def __init__(
        self, config: dict[str, Any], on_fatal: Callable[[TransportError], None] | None = None
    ) -> None:
        self._producer = Producer(config)
        self._on_fatal = on_fatal
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # Reports served on a thread other than the loop's, waiting to be handed over in one batch (a
        # deque: appended on that thread, emptied on another).
        self._reports: deque[Report] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False  # the timer is the short one
        self._closed = False
        self._failed = False

    @property
    def client(self) -> Producer:
        """The underlying confluent-kafka producer (transactions use it directly)."""
        return self._producer

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        """Queue one message; the future resolves when the broker acknowledges it."""
        loop = self._loop or self._bind()
        delivered: asyncio.Future[None] = loop.create_future()
        waiting = self.send_reported(topic, value, key, headers, partition, _FutureReport(delivered))
        if waiting is not None:
            await waiting
        return delivered

    def send_reported(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        partition: int | None,
        report: Callable[[TransportError | None], None],
    ) -> Awaitable[None] | None:
        """Queue one message; ``report`` is called on the loop once the broker has acknowledged it (with
        None) or given up on it (with the error). Cheaper than :meth:`send` on the hot path: no future,
        no callback scheduled through the loop, and one ``report`` may count many messages.

        Returns None once the message is queued, which is almost always at once; when librdkafka's
        queue is full, an awaitable that queues it as room frees (await it: until then nothing is sent,
        and cancelling it sends nothing)."""
        if self._loop is None:
            self._bind()
        loop_thread = self._loop_thread

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if threading.get_ident() != loop_thread:
                self._reports.append((report, error, message))
            elif error is None:
                report(None)
            else:
                report(delivery_error(error, message))

        # All positional: the client parses keyword arguments at about a third of a send's cost. Its
        # order is topic, value, key, partition, callback, on_delivery (an alias: None), timestamp (0:
        # now) and headers.
        listed = headers if headers is None or type(headers) is list else list(headers)
        target = -1 if partition is None else partition
        try:
            self._producer.produce(topic, value, key, target, on_delivery, None, 0, listed)
        except BufferError:
            produce = functools.partial(
                self._producer.produce, topic, value, key, target, on_delivery, None, 0, listed
            )
            return self._produce_when_room(topic, produce)
        except KafkaException as exc:
            raise produce_error(topic, exc) from exc
        if not self._busy:
            self._schedule(_POLL_BUSY)
        return None

    async def _produce_when_room(self, topic: str, produce: Callable[[], None]) -> None:
        """The local queue is full: reports served free room as the broker acknowledges."""
        while True:
            self._poll()
            await asyncio.sleep(_QUEUE_FULL_WAIT)
            try:
                produce()
                break
            except BufferError:
                continue
            except KafkaException as exc:
                raise produce_error(topic, exc) from exc
        if not self._busy:
            self._schedule(_POLL_BUSY)

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The first send binds the producer to the running loop: its reports are served there."""
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        return loop

    def _schedule(self, delay: float) -> None:
        if self._closed or self._failed or self._loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._busy = delay == _POLL_BUSY
        self._timer = self._loop.call_later(delay, self._poll)

    def _poll(self) -> None:
        """On the loop: serve the delivery reports that arrived, then look again soon if more are due."""
        self._timer = None
        self._busy = False
        if self._closed or self._failed:
            return
        try:
            self._producer.poll(0)
        except KafkaException as exc:
            self._failed = True
            if self._on_fatal is not None:
                self._on_fatal(TransportError(f"producer failed: {exc.args[0].str()}"))
            return
        self._hand_over_reports()
        self._schedule(_POLL_BUSY if len(self._producer) else _POLL_IDLE)

    def _hand_over_reports(self) -> None:
        """Settle the futures of reports served on another thread, in one wake-up of the loop."""
        if not self._reports or self._loop is None:
            return
        batch = []
        while self._reports:
            batch.append(self._reports.popleft())
        self._loop.call_soon_threadsafe(_settle_all, batch)

    def close(self, timeout: float = 30.0) -> int:
        """Flush (bounded) and stop polling; returns messages left undelivered. Callable from any thread."""
        self._closed = True
        remaining = int(self._producer.flush(timeout))  # serves the last reports on this thread
        self._hand_over_reports()
        return remaining


def _settle_all(batch: list[Report]) -> None:
    for report, error, message in batch:
        report(None if error is None else delivery_error(error, message))


def delivery_error(error: KafkaError, message: Message) -> TransportError:
    return TransportError(f"delivery to {message.topic()} failed: {error.str()}", retriable=error.retriable())


class _FutureReport:
    """A report that settles one future (:meth:`AsyncProducer.send`)."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self._future = future

    def __call__(self, error: TransportError | None) -> None:
        if self._future.done():
            return
        if error is None:
            self._future.set_result(None)
        else:
            self._future.set_exception(error)
