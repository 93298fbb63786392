"""The twin's workers: one agent each on the in-memory broker, driven through the worker's own
processor, handler and committer; and the fake clock they wait on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from streams.agent import Agent
from streams.context import Tick
from streams.middleware import Chain
from streams.routing import PoolLoad
from streams.serde.codec import RecordDecoder
from streams.serde.payloads import Payloads
from streams.serde.record import Record
from streams.serde.registry import InMemoryRegistry
from streams.testing.broker import BrokerSender, InMemoryBroker, InMemoryIds, StoredMessage
from streams.topics import Topic
from streams.worker.committer import CommitBatch, Committer
from streams.worker.delivery import AtLeastOnceDelivery, Delivery, ExactlyOnceDelivery
from streams.worker.handling import MessageHandler
from streams.worker.items import WorkItem
from streams.worker.outbox import Encoders
from streams.worker.processing import Processor
from streams.worker.stats import WorkerStats
from streams.worker.tables import AgentTables
from streams.worker.ticks import send_acknowledged


class FakeClock:
    """Time for the twin: ``sleep`` advances it at once (and yields), ``sleeps`` records every wait."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def millis(self) -> int:
        return int(self.now * 1000)


class TwinWorker:
    """One agent on the in-memory broker: the worker's processor, handler and committer, fed by reads."""

    def __init__(
        self,
        agent: Agent[Any],
        broker: InMemoryBroker,
        registry: InMemoryRegistry,
        payloads: Payloads,
        clock: FakeClock,
        middleware: Chain,
    ) -> None:
        self.agent = agent
        self.stats = WorkerStats()
        self._broker = broker
        self._broker.create_topic(agent.dead_letter_topic, agent.topic.partitions)
        self._failure: BaseException | None = None
        sender = BrokerSender(self._broker)
        encoders = Encoders(registry)
        self._delivery: Delivery = (
            ExactlyOnceDelivery(encoders) if agent.exactly_once else AtLeastOnceDelivery(sender, encoders)
        )
        ids = InMemoryIds() if agent.dedup else None
        self.tables = AgentTables(agent, registry, encoders)
        self.tables.start_empty(range(agent.topic.partitions))
        for changelog in self.tables.changelogs():
            self._broker.create_topic(changelog.name, changelog.partitions)
        tables = self.tables if agent.tables else None
        handler = MessageHandler(
            agent,
            RecordDecoder(registry, agent.topic.value),
            self._delivery,
            self.stats,
            middleware=middleware,
            dedup=ids,
            tables=tables,
            payloads=payloads,
            sleep=clock.sleep,
            clock=clock.millis,
        )
        self._paused: bool | AbstractSet[str] = False
        self._processor = Processor(
            agent, handler, self.stats, on_fatal=self._fail, on_pressure=self._pressure, dedup=ids
        )
        self._owned = {(t, p) for t in agent.topics for p in range(self._broker.partitions(t))}
        self._committer = Committer(self._processor.offsets, self._delivery, self._owned, self._commit)
        self._sender = sender
        self._encoders = encoders
        self._positions = dict.fromkeys(self._owned, 0)

    async def stop(self) -> None:
        self._processor.halt()
        await self._processor.cancel_running()

    async def tick(self, now_ms: int) -> None:
        """Run the agent's ticker once, at the fake clock's time, over every partition; caught up are
        those with nothing unread or unfinished."""
        ticker = self.agent.ticker
        if ticker is None:
            return

        async def send(topic: Topic[Any], value: Record, key: str | bytes | None) -> None:
            await send_acknowledged(self._sender, self._encoders, topic, value, key)

        topic = self.agent.topic.name
        caught_up = {
            p
            for (t, p), position in self._positions.items()
            if t == topic
            and not self._broker.read(t, p, position)
            and not self._processor.offsets.pending(t, p)
        }
        partitions = list(range(self.agent.topic.partitions))
        await ticker.tick(Tick(now_ms, partitions, caught_up, self.tables.open, send))

    def fetch(self) -> int:
        """Hand everything new on the agent's topic to the processor; returns how many."""
        items: list[WorkItem] = []
        for (topic, partition), position in self._positions.items():
            if self._paused is True or (self._paused is not False and topic in self._paused):
                continue  # as the poll thread would: a lower priority while a higher one has work
            new = self._broker.read(topic, partition, position)
            items.extend(_item(message) for message in new)
            self._positions[(topic, partition)] = position + len(new)
        if items:
            self._processor.accept(items)
        return len(items)

    def backlog(self) -> int:
        """Messages received and unfinished, plus those not read yet: what a heartbeat's in-flight
        and lag would add up to."""
        unread = sum(len(self._broker.read(t, p, position)) for (t, p), position in self._positions.items())
        return self._processor.in_flight + unread

    def fetch_pending(self) -> bool:
        return any(self._broker.read(t, p, position) for (t, p), position in self._positions.items())

    async def finish(self, within: float) -> None:
        left = await self._processor.finish_received(within)
        if self._failure is not None:
            raise self._failure
        if left:
            raise TimeoutError(
                f"agent {self.agent.name}: {left} message(s) still unfinished after {within:.0f}s"
            )
        await self._committer.commit()

    async def _commit(self, batch: CommitBatch) -> None:
        # A transaction: held outputs appear together with the offsets that produced them.
        for output in batch.outputs:
            await self._sender.send(output.topic, output.value, output.key, output.headers, output.partition)
        self._broker.commit(self.agent.group_id, batch.positions)

    def _pressure(self, paused: bool | AbstractSet[str]) -> None:
        self._paused = paused

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error


class TwinLoads:
    """The twin's :class:`~streams.routing.LoadSource`: exact, and only for the agents it runs."""

    def __init__(self, workers: Mapping[str, TwinWorker]) -> None:
        self._by_group = {worker.agent.group_id: worker for worker in workers.values()}

    def load(self, group_id: str) -> PoolLoad | None:
        worker = self._by_group.get(group_id)
        return None if worker is None else PoolLoad(live=True, load=worker.backlog())


def _item(message: StoredMessage) -> WorkItem:
    return WorkItem(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=list(message.headers),
        timestamp_ms=message.timestamp_ms,
        size=len(message.value or b"") + len(message.key or b""),
    )
