"""Processing received messages: lanes, handler tasks, offsets, backpressure, and draining.

A :class:`Processor` takes received :class:`WorkItem` s, starts each when its lane and a concurrency slot
allow, waits for its outputs (and, for dedup agents, its recorded id) and only then marks its offset
finished, so a commit never passes work whose outputs could still be lost. It decides when fetching
should pause (``on_pressure``) but never touches Kafka or threads: the real worker and the in-memory
twin both drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from streams.agent import Agent
from streams.runtime.backpressure import Backpressure
from streams.runtime.lanes import LaneScheduler
from streams.runtime.offsets import OffsetTracker
from streams.worker.handling import MessageHandler
from streams.worker.items import WorkItem
from streams.worker.stats import WorkerStats

log = logging.getLogger("streams.worker")

TP = tuple[str, int]


class IdLog(Protocol):
    """Where a dedup agent records handled ids (see :mod:`streams.worker.dedup`)."""

    async def record(self, partition: int, message_id: str) -> asyncio.Future[Any]: ...


class Processor:
    def __init__(
        self,
        agent: Agent[Any],
        handler: MessageHandler,
        stats: WorkerStats,
        *,
        on_fatal: Callable[[BaseException], None],
        on_pressure: Callable[[bool], None] = lambda paused: None,
        dedup: IdLog | None = None,
    ) -> None:
        self._agent = agent
        self._handler = handler
        self._stats = stats
        self._on_fatal = on_fatal
        self._on_pressure = on_pressure
        self._dedup = dedup
        self.offsets = OffsetTracker()
        self._scheduler: LaneScheduler[WorkItem] = LaneScheduler(agent.ordering, agent.concurrency)
        self._backpressure = Backpressure(
            max_messages=agent.limits.max_in_flight, max_bytes=agent.limits.max_bytes
        )
        self._running: dict[TP, set[asyncio.Task[None]]] = defaultdict(set)
        self._paused = False  # what this processor asked for through on_pressure
        self._stopped = False  # failed: drains stop waiting
        self._finished_one = asyncio.Event()  # wakes drains as messages finish
        self.idle = asyncio.Event()  # set when the last message in flight finishes: worth a commit now

    @property
    def in_flight(self) -> int:
        """Messages received and not finished: waiting for their lane, being handled, or delivering."""
        return self._backpressure.messages

    def accept(self, items: Iterable[WorkItem]) -> None:
        """Take received items; pause fetching above the bounds.

        An item at or below an offset already received for its partition is a refetch (librdkafka
        can rewind a partition's fetch position): it is in flight or finished already, so it is
        skipped and counted, never handled twice or allowed to break the offset order.
        """
        refetched = 0
        for item in items:
            if self.offsets.received(item.topic, item.partition, item.offset):
                refetched += 1
                continue
            self._stats.received += 1
            self.offsets.track(item.topic, item.partition, item.offset)
            self._backpressure.add(item.size)
            self._scheduler.submit(item)
        if refetched:
            self._stats.refetched += refetched
            log.warning(
                "agent %s: skipped %d message(s) received again (refetched)", self._agent.name, refetched
            )
        self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._backpressure.messages)
        if not self._paused and self._backpressure.should_pause:
            self._set_paused(True)

    async def run(self) -> None:
        """Start items as lanes and slots allow; runs until cancelled (cancelling starts nothing new)."""
        while True:
            item = await self._scheduler.next_ready()
            tp = (item.topic, item.partition)
            task = asyncio.create_task(self._process(item))
            self._running[tp].add(task)
            task.add_done_callback(self._running[tp].discard)

    async def _process(self, item: WorkItem) -> None:
        try:
            outcome = await self._handler.handle(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - stop the worker; the offset stays uncommitted
            self.fail(exc)
            return
        # The key's next message may start now: the idempotent producer keeps this one's outputs in
        # order ahead of it, and only the commit waits for the broker's acknowledgement. Dedup agents
        # hold the slot until the id is durable, so a crash can repeat at most `concurrency` side
        # effects instead of everything acknowledged-but-unconfirmed.
        if self._dedup is None:
            self._scheduler.finished(item)
        try:
            for delivery in outcome.deliveries:
                await delivery
            if outcome.handled_id is not None and self._dedup is not None:
                # Only now, with every output acknowledged: a durable id means "outputs delivered", so a
                # redelivery it turns away has nothing left to send. Recorded any earlier, the id could
                # reach the broker before the outputs and a crash in between would lose them for good.
                await (await self._dedup.record(item.partition, outcome.handled_id))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - an output is lost for good: stop, uncommitted
            self.fail(exc)
            return
        if self._dedup is not None:
            self._scheduler.finished(item)
        self.offsets.done(item.topic, item.partition, item.offset)
        self._finished_one.set()
        self._backpressure.remove(item.size)
        if not self._backpressure.messages:
            self.idle.set()
        if self._paused and self._backpressure.should_resume:
            self._set_paused(False)

    def fail(self, error: BaseException) -> None:
        """A message failed for good: report it, and let drains stop waiting."""
        self._stopped = True
        self._finished_one.set()
        self._on_fatal(error)

    async def finish_received(self, seconds: float, only: set[TP] | None = None) -> int:
        """Wait (at most ``seconds``) until every received message (of ``only``) is finished, or a
        failure; returns how many are still unfinished.

        Wakes on :attr:`_finished_one`, which every finished message sets (cheap while set: nobody
        clears it outside of this wait).
        """
        offsets = self.offsets

        def unfinished() -> int:
            if only is None:
                return offsets.total_pending
            return sum(offsets.pending(topic, partition) for topic, partition in only)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := unfinished()) and not self._stopped:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._finished_one.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished_one.wait(), remaining)
        return left

    async def cancel_running(self) -> None:
        """Stop handlers still running (after a drain ran out): their messages stay uncommitted."""
        tasks = [task for running in self._running.values() for task in running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def drop(self, tps: Iterable[TP]) -> None:
        """Forget the queued (never started) messages of ``tps``; started ones run on, their
        completions become stale once the partitions are :meth:`forget`-ten."""
        for topic, partition in tps:
            for item in self._scheduler.drop_partition(topic, partition):
                self._backpressure.remove(item.size)
        if self._paused and self._backpressure.should_resume:
            self._set_paused(False)

    def forget(self, tps: Iterable[TP]) -> None:
        for topic, partition in tps:
            self.offsets.revoke(topic, partition)

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if paused:
            self._stats.pauses += 1
        self._on_pressure(paused)
