"""Running an agent's ticker: time-driven work beside its handler (timers coming due).

Every ``interval`` seconds, on the worker's loop, the ticker sees the input partitions this worker
owns, which of them it has handled every record of, and their tables. What it sends goes through a
producer of its own, outside the handler's transactions, and is awaited until the broker has it: a
tick's events must be safe to repeat (a timer that fires twice is ignored the second time), and one
lost to a crash is sent again after restore.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from streams.context import TableOpener, Tick, Ticker
from streams.serde.codec import encode_key
from streams.serde.record import Record
from streams.topics import Topic
from streams.transport.async_producer import AsyncProducer
from streams.worker.outbox import Encoders, Sender

log = logging.getLogger("streams.worker")


class TickLoop:
    def __init__(
        self,
        ticker: Ticker,
        partitions: Callable[[], list[int]],
        caught_up: Callable[[], Awaitable[set[int]]],
        open_table: TableOpener,
        producer: AsyncProducer,
        encoders: Encoders,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self._ticker = ticker
        self._partitions = partitions
        self._caught_up = caught_up
        self._open_table = open_table
        self._producer = producer
        self._encoders = encoders
        self._on_fatal = on_fatal

    async def run(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self._ticker.interval)
            try:
                caught_up = await self._caught_up_now()
                now_ms = int(time.time() * 1000)
                tick = Tick(now_ms, self._partitions(), caught_up, self._open_table, self.send)
                await self._ticker.tick(tick)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup: the next tick tries again
                failures += 1
                log.warning("tick failed (%d in a row): %s: %s", failures, type(exc).__name__, exc)
                if failures >= 30:
                    self._on_fatal(exc)
                    return

    async def _caught_up_now(self) -> set[int]:
        """The caught-up partitions, or none while the poll thread cannot say (a rebalance restoring
        tables holds it): a ticker that does not ask, like the workflow timers, must not wait."""
        try:
            return await asyncio.wait_for(self._caught_up(), self._ticker.interval)
        except TimeoutError:
            return set()

    async def send(self, topic: Topic[Any], value: Record, key: str | bytes | None) -> None:
        await send_acknowledged(self._producer, self._encoders, topic, value, key)


async def send_acknowledged(
    sender: Sender, encoders: Encoders, topic: Topic[Any], value: Record, key: str | bytes | None
) -> None:
    """A tick's send: encoded, sent, and returned once the broker has it."""
    delivered = await sender.send(topic.name, encoders.encode(topic, value), encode_key(key))
    await delivered
