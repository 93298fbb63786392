"""One agent's worker on Kafka: wires a polling consumer, a processor, a committer and a producer.

Threads: the consumer's poll thread (:mod:`streams.transport.poller`) fetches and runs rebalance
callbacks; everything else happens on the asyncio loop. What happens to each message lives in
:mod:`~streams.worker.processing` and :mod:`~streams.worker.handling` (shared with the in-memory twin),
commits in :mod:`~streams.worker.committer`, the at-least-once / exactly-once differences in
:mod:`~streams.worker.delivery`. This module owns the life cycle: start, rebalances, drain and stop.

Shutdown (SIGTERM) stops fetching, finishes every received message (bounded by ``drain_timeout``),
commits and leaves the group; a revoked partition finishes its received messages before it moves.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.agent import Agent
from streams.config import Settings
from streams.errors import TransportError
from streams.middleware import Chain, Middleware
from streams.serde.codec import RecordDecoder
from streams.serde.registry import SchemaRegistry
from streams.transport import clients
from streams.transport.async_producer import AsyncProducer
from streams.transport.poller import PollingConsumer
from streams.worker.committer import CommitBatch, Committer
from streams.worker.dedup import DedupStore
from streams.worker.delivery import AtLeastOnceDelivery, Delivery, ExactlyOnceDelivery
from streams.worker.handling import HandlerFailed, MessageHandler
from streams.worker.items import WorkItem
from streams.worker.outbox import Encoders
from streams.worker.processing import Processor
from streams.worker.stats import WorkerStats
from streams.worker.transactions import Transactions

log = logging.getLogger("streams.worker")

TP = tuple[str, int]
_POLL_BATCH = 500

__all__ = ["AgentWorker", "HandlerFailed", "WorkerStats"]


class AgentWorker:
    """Runs one agent in this process until stopped. ``middleware`` wraps every handler call and send
    (the runner puts tracing and metrics there)."""

    def __init__(
        self,
        agent: Agent[Any],
        settings: Settings,
        registry: SchemaRegistry,
        worker_id: str | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self.agent = agent
        self.settings = settings
        self.worker_id = worker_id or uuid.uuid4().hex[:8]
        self.stats = WorkerStats()
        self._registry = registry
        self._middleware = Chain(middleware)
        self._assigned: set[TP] = set()
        self._failure: BaseException | None = None
        self._failed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # set by run()
        self._poller: PollingConsumer | None = None
        self._processor: Processor | None = None
        self._committer: Committer | None = None
        self._transactions: Transactions | None = None
        self._dedup: DedupStore | None = None

    # ----------------------------------------------------------------- life cycle

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (then drain and commit) or a fatal error (then raise it)."""
        loop = self._loop = asyncio.get_running_loop()
        agent = self.agent
        producer = clients.async_producer(
            self.settings,
            client_id=f"{agent.group_id}.{self.worker_id}",
            transactional_id=f"{agent.group_id}.{self.worker_id}" if agent.exactly_once else None,
            on_fatal=self._fail_from_thread,
        )
        try:
            consumer = clients.agent_consumer(
                self.settings,
                agent.group_id,
                f"{agent.group_id}.{self.worker_id}",
                from_earliest=agent.start != "latest",
                user_config=agent.consumer_config,
            )
        except BaseException:
            producer.close(0)
            raise
        encoders = Encoders(self._registry)
        delivery: Delivery = (
            ExactlyOnceDelivery(encoders) if agent.exactly_once else AtLeastOnceDelivery(producer, encoders)
        )
        if agent.dedup:
            self._dedup = DedupStore(self.settings, agent.dedup_changelog_topic, producer)
        handler = MessageHandler(
            agent,
            RecordDecoder(self._registry, agent.topic.value),
            delivery,
            self.stats,
            middleware=self._middleware,
            dedup=self._dedup,
            propagate_trace=self.settings.streams_tracing,
        )
        poller = self._poller = PollingConsumer(
            consumer,
            loop,
            batch_size=min(_POLL_BATCH, agent.limits.max_in_flight),
            on_batch=self._accept,
            on_error=self._fail,
            start_at=agent.start if isinstance(agent.start, datetime) else None,
            track_group_metadata=agent.exactly_once,
        )
        processor = self._processor = Processor(
            agent, handler, self.stats, on_fatal=self._fail, on_pressure=poller.want_paused, dedup=self._dedup
        )
        self._committer = Committer(processor.offsets, delivery, self._assigned, self._execute_commit)
        if agent.exactly_once:
            self._transactions = Transactions(producer)
            await loop.run_in_executor(None, self._transactions.init)
        poller.start([agent.topic.name], self)
        log.info(
            "agent %s started (worker %s, group %s, %s, ordering=%s, concurrency=%d)",
            agent.name,
            self.worker_id,
            agent.group_id,
            "exactly-once" if agent.exactly_once else "at-least-once" + (" + dedup" if agent.dedup else ""),
            agent.ordering,
            agent.concurrency,
        )
        dispatcher = asyncio.create_task(processor.run(), name=f"dispatch-{agent.name}")
        committer = asyncio.create_task(
            self._committer.run_periodically(self._fail), name=f"commit-{agent.name}"
        )
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(self._failed.wait())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed.cancel()
        await self._shutdown(producer, dispatcher, committer)
        if self._failure is not None:
            raise self._failure

    async def _shutdown(
        self, producer: AsyncProducer, dispatcher: asyncio.Task[None], committer: asyncio.Task[None]
    ) -> None:
        assert self._poller is not None and self._processor is not None and self._committer is not None
        loop = asyncio.get_running_loop()
        processor = self._processor
        log.info("agent %s draining: finishing %d received message(s)", self.agent.name, processor.in_flight)
        # A commit in progress finishes first (never cancel one); it may need the poll thread.
        self._committer.stop_periodic()
        [outcome] = await asyncio.gather(committer, return_exceptions=True)
        if isinstance(outcome, BaseException):
            log.error("agent %s: committer failed: %s", self.agent.name, outcome)
        await self._poller.stop()
        # Nothing new arrives now. Finish everything already received, queued or started: lanes finish
        # out of offset order, so stopping at the started ones would leave the commit far below work
        # already done, and a restart would repeat it.
        if self._failure is None:
            await processor.finish_received(self.agent.limits.drain_timeout)
        dispatcher.cancel()
        unfinished = processor.offsets.total_pending
        if unfinished:
            await processor.cancel_running()
        if self._failure is None:
            await self._committer.commit()
        if unfinished:
            log.warning(
                "agent %s: %d message(s) unfinished after drain_timeout=%.0fs; %d message(s) from the "
                "commit position on will be redelivered",
                self.agent.name,
                unfinished,
                self.agent.limits.drain_timeout,
                processor.offsets.redeliverable(),
            )
        # close() revokes whatever is still assigned; its callback commits what finished meanwhile.
        await loop.run_in_executor(None, self._poller.close)
        undelivered = await loop.run_in_executor(None, producer.close)
        if undelivered:
            log.error("agent %s: %d output(s) undelivered at shutdown", self.agent.name, undelivered)
        log.info(
            "agent %s stopped: %d received, %d processed, %d retried, %d dead-lettered",
            self.agent.name,
            self.stats.received,
            self.stats.processed,
            self.stats.retries,
            self.stats.dead_lettered,
        )

    def _fail_from_thread(self, error: BaseException) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._fail, error)

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
            log.error("agent %s failed: %s", self.agent.name, error)
        self._failed.set()

    # ----------------------------------------------------------------- receiving and committing

    def _accept(self, messages: list[Any]) -> None:
        """Loop: one fetched batch. Messages of partitions revoked meanwhile are left to the new owner."""
        assert self._processor is not None
        items = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    self._fail(TransportError(f"consumer failed: {error.str()}"))
                    return
                log.warning("agent %s: consumer error: %s", self.agent.name, error.str())
                continue
            item = WorkItem.of(message)
            if (item.topic, item.partition) in self._assigned:
                items.append(item)
        self._processor.accept(items)

    async def _execute_commit(self, batch: CommitBatch) -> None:
        if self._transactions is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._commit_here, batch)
            return
        assert self._poller is not None
        try:
            await self._poller.commit(_offsets(batch))
        except KafkaException as exc:
            raise TransportError(f"commit failed: {exc.args[0].str()}", retriable=True) from exc

    def _commit_here(self, batch: CommitBatch) -> None:
        """On the calling thread (a rebalance callback, or an executor for transactions)."""
        assert self._poller is not None
        if self._transactions is not None:
            self._transactions.commit(batch.outputs, _offsets(batch), self._poller.group_metadata)
        else:
            self._poller.commit_here(_offsets(batch))

    # ----------------------------------------------------------------- rebalancing
    #
    # assigned / revoked / lost are the poll thread's rebalance callbacks (a RebalanceListener): the
    # consumer is blocked until they return, and they reach the loop through the poller.

    def assigned(self, partitions: set[TP]) -> None:
        assert self._poller is not None
        if self._dedup is not None:
            # Before any message of these partitions is handled: a redelivery must already be known.
            self._dedup.restore(p for _, p in partitions)
        self._poller.run_on_loop(_call(self._assigned_now, partitions))
        log.info("agent %s assigned %s", self.agent.name, _describe(partitions))

    def revoked(self, partitions: set[TP]) -> None:
        poller, committer = self._poller, self._committer
        assert poller is not None and committer is not None
        self.stats.revocations += 1
        # At shutdown the worker has drained already (close() revokes everything): do not wait twice.
        poller.run_on_loop(self._release(partitions, drain=not poller.stopping))
        batch = poller.run_on_loop(committer.begin(partitions))
        committed = None
        try:
            if batch is not None:
                self._commit_here(batch)
                committed = batch
        except (KafkaException, TransportError) as exc:
            log.warning("agent %s: commit on revocation failed: %s", self.agent.name, exc)
        finally:
            poller.run_on_loop(committer.end(committed))
        poller.run_on_loop(self._forget(partitions))
        log.info("agent %s revoked %s", self.agent.name, _describe(partitions))

    def lost(self, partitions: set[TP]) -> None:
        # Another member may already own them: committing now could overwrite its progress.
        assert self._poller is not None
        self._poller.run_on_loop(self._release(partitions, drain=False))
        self._poller.run_on_loop(self._forget(partitions))
        log.warning("agent %s lost %s", self.agent.name, _describe(partitions))

    def _assigned_now(self, tps: set[TP]) -> None:
        self._assigned.update(tps)
        self.stats.assignments += 1

    async def _release(self, tps: set[TP], *, drain: bool) -> None:
        """Hand back ``tps``: with ``drain``, first let their received messages (queued and started)
        finish, bounded by ``drain_timeout``, so the new owner starts where this worker stopped; then
        drop what has not started. Handlers still running keep going; their messages are redelivered."""
        assert self._processor is not None
        if drain:
            left = await self._processor.finish_received(self.agent.limits.drain_timeout, tps)
            if left:
                log.warning(
                    "agent %s: %d message(s) of revoked partitions unfinished after drain_timeout=%.0fs; "
                    "they will be redelivered to the new owner",
                    self.agent.name,
                    left,
                    self.agent.limits.drain_timeout,
                )
        self._processor.drop(tps)

    async def _forget(self, tps: set[TP]) -> None:
        assert self._processor is not None and self._committer is not None
        if self._dedup is not None:
            self._dedup.forget(p for _, p in tps)
        self._assigned.difference_update(tps)
        self._processor.forget(tps)
        self._committer.forget(tps)

    # ----------------------------------------------------------------- observing
    #
    # Read-only views for telemetry (metrics, health, heartbeats). Call them on the worker's event
    # loop: the sets and maps they copy belong to the loop.

    def assigned_partitions(self) -> list[TP]:
        """The partitions this worker owns now, sorted."""
        return sorted(self._assigned)

    def in_flight(self) -> int:
        """Messages received and not finished yet: waiting for their lane or being handled."""
        return 0 if self._processor is None else self._processor.in_flight

    def is_paused(self) -> bool:
        """Whether fetching is paused for backpressure (the poll thread pauses every owned partition)."""
        return self._poller is not None and self._poller.paused

    def is_draining(self) -> bool:
        """Whether shutdown has begun: polling stopped, received messages finishing."""
        return self._poller is not None and self._poller.stopping

    def failure(self) -> BaseException | None:
        """The error that stopped (or is stopping) this worker, if any."""
        return self._failure

    def committed_positions(self) -> dict[TP, int]:
        """Per owned partition that has received messages: the position last committed (next offset
        to read); before the first commit, the first offset received, which is where the group was."""
        if self._processor is None:
            return {}
        committed = self._processor.offsets.committed_positions()
        return {tp: position for tp, position in committed.items() if tp in self._assigned}


async def _call(function: Any, *args: Any) -> None:
    function(*args)


def _offsets(batch: CommitBatch) -> list[TopicPartition]:
    return [TopicPartition(t, p, o) for (t, p), o in batch.positions.items()]


def _describe(tps: set[TP]) -> str:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for topic, partition in sorted(tps):
        by_topic[topic].append(partition)
    return ", ".join(f"{t}{p}" for t, p in by_topic.items()) or "nothing"
