"""Processing received messages: lanes, handler tasks, offsets, backpressure, and draining.

A :class:`Processor` takes received :class:`WorkItem` s, starts each when its lane and a concurrency slot
allow, waits for its outputs (and, for dedup agents, its recorded id) and only then marks its offset
finished, so a commit never passes work whose outputs could still be lost. It decides when fetching
should pause (``on_pressure``) but never touches Kafka or threads: the real worker and the in-memory
twin both drive it.

The hot path costs no turn of the event loop of its own, and no task per message: a received batch
starts what may start right away as eager tasks (:mod:`streams.worker.eager`), each of which handles
its message and then, in the slot that message frees, the next ready one, so handlers that never
wait run through the whole batch inside the call that received it; and the acknowledgements of a
message's outputs finish it through callbacks, not through a task waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Set
from typing import Any, Protocol

from streams.agent import Agent
from streams.runtime.backpressure import Backpressure
from streams.runtime.lanes import LaneScheduler
from streams.runtime.offsets import OffsetTracker
from streams.worker.acks import Acks
from streams.worker.eager import start_task
from streams.worker.handling import MessageHandler, Outcome
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
        on_pressure: Callable[[bool | Set[str]], None] = lambda paused: None,
        dedup: IdLog | None = None,
    ) -> None:
        self._agent = agent
        self._handler = handler
        self._stats = stats
        self._on_fatal = on_fatal
        self._on_pressure = on_pressure
        self._dedup = dedup
        self.offsets = OffsetTracker()
        self._ranks = {topic: rank for rank, topic in enumerate(agent.topics)}
        self._scheduler: LaneScheduler[WorkItem] = LaneScheduler(
            agent.ordering, agent.concurrency, ranks=self._ranks, min_share=agent.min_share
        )
        self._backpressure = Backpressure(
            max_messages=agent.limits.max_in_flight, max_bytes=agent.limits.max_bytes
        )
        self._by_rank = [0] * len(self._ranks)  # received and unfinished, per priority topic
        # A lower priority topic keeps this many received before it is paused for a higher one, so
        # that its share of the starts (agent.min_share) is there to take.
        self._reserve = agent.concurrency if agent.min_share else 0
        self._over = False  # past the backpressure bound, not yet back below the low-water mark
        self._running: set[asyncio.Task[None]] = set()  # tasks that waited: they outlive _pump
        self._generation: dict[TP, int] = defaultdict(int)  # bumped when a partition is forgotten
        self._pumping = False  # inside _pump: a nested call leaves the work to it
        self._halted = False  # shutting down: nothing new starts
        self._paused: bool | frozenset[str] = False  # what this processor asked for through on_pressure
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
            self._by_rank[self._ranks.get(item.topic, 0)] += 1
            self._scheduler.submit(item)
        self._pump()
        if refetched:
            self._stats.refetched += refetched
            log.warning(
                "agent %s: skipped %d message(s) received again (refetched)", self._agent.name, refetched
            )
        self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._backpressure.messages)
        self._pressure()

    def halt(self) -> None:
        """Start nothing new (shutdown): queued messages stay queued, started ones run on."""
        self._halted = True

    def _pump(self) -> None:
        """Start a task for every item that may start now. A task started here handles its item and
        then, while more are ready, the next ones (:meth:`_drain`); it starts eagerly, so a batch of
        handlers that never wait runs to its end inside the first task, before this returns. Entered
        again from inside that run (messages received while a handler runs, as the in-memory twin can
        hand them over), it returns at once: the running tasks and this loop take them."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self._halted and (item := self._scheduler.take_ready()) is not None:
                task = start_task(asyncio.get_running_loop(), self._drain(item))
                if not task.done():
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
        finally:
            self._pumping = False

    async def _drain(self, item: WorkItem) -> None:
        """Handle ``item``, then each item that is ready when one finishes: the slot a finished item
        frees goes to the next one in this same task, so a message costs no task of its own."""
        while await self._process(item) and not self._halted:
            next_item = self._scheduler.take_ready()
            if next_item is None:
                return
            item = next_item

    async def _process(self, item: WorkItem) -> bool:
        """Handle one item; False if it failed for good (the worker stops, nothing more starts here)."""
        try:
            outcome = await self._handler.handle(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - stop the worker; the offset stays uncommitted
            self.fail(exc)
            return False
        if self._dedup is not None:
            return await self._confirm_and_record(item, outcome)
        # The key's next message may start now: the idempotent producer keeps this one's outputs in
        # order ahead of it, and only the commit waits for the broker's acknowledgement.
        self._scheduler.finished(item)
        acks = outcome.acks
        generation = self._generation[(item.topic, item.partition)]
        if acks.settled:
            self._settled(item, generation, acks)
        else:
            acks.when_settled(functools.partial(self._settled, item, generation, acks))
        return True

    def _settled(self, item: WorkItem, generation: int, acks: Acks) -> None:
        """Every output of ``item`` is acknowledged, or one failed: then an output is lost for good,
        and the worker stops with the offset uncommitted."""
        if acks.error is not None:
            self.fail(acks.error)
        else:
            self._finish(item, generation)

    async def _confirm_and_record(self, item: WorkItem, outcome: Outcome) -> bool:
        """Dedup agents hold the slot until the id is durable, so a crash can repeat at most
        `concurrency` side effects instead of everything acknowledged-but-unconfirmed."""
        assert self._dedup is not None
        generation = self._generation[(item.topic, item.partition)]
        try:
            acks = outcome.acks
            await acks.wait()
            if acks.error is not None:
                raise acks.error
            if outcome.handled_id is not None:
                # Only now, with every output acknowledged: a durable id means "outputs delivered", so a
                # redelivery it turns away has nothing left to send. Recorded any earlier, the id could
                # reach the broker before the outputs and a crash in between would lose them for good.
                await (await self._dedup.record(item.partition, outcome.handled_id))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - an output is lost for good: stop, uncommitted
            self.fail(exc)
            return False
        self._scheduler.finished(item)
        self._finish(item, generation)
        return True

    def _finish(self, item: WorkItem, generation: int) -> None:
        """Every output of ``item`` is acknowledged: its offset may be committed. A completion from
        before its partition was revoked (``generation`` passed) is stale: the partition's messages
        are received anew, and marking one of them finished would let a commit pass it."""
        tp = (item.topic, item.partition)
        if self._generation[tp] != generation:
            self.offsets.stale_completions += 1
            return
        self.offsets.done(item.topic, item.partition, item.offset)
        self._finished_one.set()
        self._backpressure.remove(item.size)
        self._by_rank[self._ranks.get(item.topic, 0)] -= 1
        if not self._backpressure.messages:
            self.idle.set()
        self._pressure()

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
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def drop(self, tps: Iterable[TP]) -> None:
        """Forget the queued (never started) messages of ``tps``; started ones run on, their
        completions become stale once the partitions are :meth:`forget`-ten."""
        for topic, partition in tps:
            for item in self._scheduler.drop_partition(topic, partition):
                self._backpressure.remove(item.size)
                self._by_rank[self._ranks.get(item.topic, 0)] -= 1
        self._pressure()

    def forget(self, tps: Iterable[TP]) -> None:
        for topic, partition in tps:
            self.offsets.revoke(topic, partition)
            self._generation[(topic, partition)] += 1

    def _pressure(self) -> None:
        """Ask for the pause state that the counts call for, if it changed.

        Past the backpressure bound (until back at the low-water mark), fetching pauses; with
        priority topics, only for those holding received messages, so that a request of a higher
        class still gets in (an overshoot of at most one fetch per class). Below it, a lower priority
        topic is paused while a higher one has messages received and unfinished, once it holds its
        reserve for its share."""
        backpressure = self._backpressure
        if not self._over and backpressure.should_pause:
            self._over = True
            self._stats.pauses += 1
        elif self._over and backpressure.should_resume:
            self._over = False
        wanted: bool | frozenset[str]
        if len(self._by_rank) == 1:
            wanted = self._over
        else:
            top = next((rank for rank, count in enumerate(self._by_rank) if count), None)
            wanted = (
                frozenset(
                    topic
                    for topic, rank in self._ranks.items()
                    if (self._over and self._by_rank[rank])
                    or (top is not None and rank > top and self._by_rank[rank] >= self._reserve)
                )
                or False
            )
        if wanted != self._paused:
            self._paused = wanted
            self._on_pressure(wanted)
