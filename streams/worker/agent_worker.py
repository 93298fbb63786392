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
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from streams.agent import Agent
from streams.config import Settings
from streams.errors import TransportError
from streams.middleware import Chain, Middleware
from streams.serde.codec import RecordDecoder
from streams.serde.payloads import Payloads
from streams.serde.registry import SchemaRegistry
from streams.transport import clients
from streams.transport.async_producer import AsyncProducer
from streams.transport.poller import PollingConsumer
from streams.worker.committer import Committer
from streams.worker.dedup import DedupStore
from streams.worker.delivery import AtLeastOnceDelivery, Delivery, ExactlyOnceDelivery
from streams.worker.handling import HandlerFailed, MessageHandler
from streams.worker.items import WorkItem
from streams.worker.outbox import Encoders
from streams.worker.ownership import Ownership
from streams.worker.processing import Processor
from streams.worker.stats import WorkerStats
from streams.worker.tables import AgentTables
from streams.worker.ticks import TickLoop
from streams.worker.transactions import ChangelogFlush, KafkaCommits, Transactions

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
        self._dedup: DedupStore | None = None
        self._tables: AgentTables | None = None

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
            linger_ms=agent.linger_ms,
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
        tables = self._tables = (
            AgentTables(agent, self._registry, encoders, self.settings, self.stats) if agent.tables else None
        )
        handler = MessageHandler(
            agent,
            RecordDecoder(self._registry, agent.topic.value),
            delivery,
            self.stats,
            middleware=self._middleware,
            dedup=self._dedup,
            tables=tables,
            payloads=Payloads(self._registry),
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
        transactions = Transactions(producer) if agent.exactly_once else None
        commits = KafkaCommits(poller, transactions, None if transactions else ChangelogFlush(producer))
        self._committer = Committer(processor.offsets, delivery, self._assigned, commits.execute)
        if transactions is not None:
            await loop.run_in_executor(None, transactions.init)
        ownership = Ownership(
            agent,
            poller,
            processor,
            self._committer,
            commits.execute_here,
            self.stats,
            self._dedup,
            self._assigned,
            tables,
        )
        poller.start(list(agent.topics), ownership)
        log.info(
            "agent %s started (worker %s, group %s, %s, ordering=%s, concurrency=%d)",
            agent.name,
            self.worker_id,
            agent.group_id,
            "exactly-once" if agent.exactly_once else "at-least-once" + (" + dedup" if agent.dedup else ""),
            agent.ordering,
            agent.concurrency,
        )
        committer = asyncio.create_task(
            self._committer.run_periodically(self._fail, processor.idle), name=f"commit-{agent.name}"
        )
        ticks = self._start_ticks(tables, encoders)
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(self._failed.wait())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed.cancel()
        if ticks is not None:
            ticker_task, ticker_producer = ticks
            ticker_task.cancel()
            await asyncio.gather(ticker_task, return_exceptions=True)
            await asyncio.get_running_loop().run_in_executor(None, ticker_producer.close)
        await self._shutdown(producer, committer)
        if self._failure is not None:
            raise self._failure

    async def _shutdown(self, producer: AsyncProducer, committer: asyncio.Task[None]) -> None:
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
        processor.halt()
        unfinished = processor.offsets.total_pending
        if unfinished:
            await processor.cancel_running()
        if self._failure is None:
            try:
                await self._committer.commit()
            except TransportError as exc:
                if not exc.retriable:
                    raise
                # The group moved on while this worker drained (another member left or joined): the
                # commit is refused, nothing of it became visible, and the partitions' new owners
                # handle those messages again. A graceful stop, not a failure.
                log.warning(
                    "agent %s: final commit refused (%s); %d message(s) from the commit position on go "
                    "to the partitions' next owner",
                    self.agent.name,
                    exc,
                    processor.offsets.redeliverable(),
                )
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
        if self._tables is not None:
            self._tables.close()  # the revocation above dropped what it owned; this covers a failed close
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

    def _start_ticks(
        self, tables: AgentTables | None, encoders: Encoders
    ) -> tuple[asyncio.Task[None], AsyncProducer] | None:
        """The agent's ticker on a task, with a producer of its own (outside the handler's transactions)."""
        ticker = self.agent.ticker
        if ticker is None:
            return None
        assert tables is not None, "a ticker works on the agent's tables"
        producer = clients.async_producer(
            self.settings,
            client_id=f"{self.agent.group_id}.{self.worker_id}.ticks",
            on_fatal=self._fail_from_thread,
        )
        topic = self.agent.topic.name

        async def caught_up() -> set[int]:
            return {p for t, p in await self.caught_up_partitions() if t == topic}

        loop = TickLoop(
            ticker,
            lambda: sorted(p for t, p in self._assigned if t == topic),
            caught_up,
            tables.open,
            producer,
            encoders,
            self._fail,
        )
        return asyncio.create_task(loop.run(), name=f"ticks-{self.agent.name}"), producer

    def _fail_from_thread(self, error: BaseException) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._fail, error)

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
            log.error("agent %s failed: %s", self.agent.name, error)
        self._failed.set()

    # ----------------------------------------------------------------- receiving

    def _accept(self, messages: list[Any]) -> None:
        """Loop: one fetched batch. Messages of partitions revoked meanwhile are left to the new owner."""
        assert self._processor is not None
        assigned = self._assigned
        self._processor.accept(
            item for item in map(WorkItem.of, messages) if (item.topic, item.partition) in assigned
        )

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

    def paused_partitions(self) -> int:
        """How many owned partitions are paused now: every one for backpressure, or those of lower
        priority topics while a higher one has work."""
        return 0 if self._poller is None else self._poller.paused_partitions

    def is_paused(self) -> bool:
        """Whether fetching is paused for backpressure (the poll thread pauses every owned partition)."""
        return self._poller is not None and self._poller.paused

    def is_draining(self) -> bool:
        """Whether shutdown has begun: polling stopped, received messages finishing."""
        return self._poller is not None and self._poller.stopping

    def failure(self) -> BaseException | None:
        """The error that stopped (or is stopping) this worker, if any."""
        return self._failure

    def settled_partitions(self) -> set[TP]:
        """The owned partitions with nothing received that is unfinished or uncommitted (none received
        at all, or every one finished and committed)."""
        if self._processor is None:
            return set(self._assigned)
        offsets = self._processor.offsets
        untouched = self._assigned - set(offsets.partitions())
        return untouched | (offsets.settled() & self._assigned)

    async def caught_up_partitions(self) -> set[TP]:
        """The owned partitions whose every record is handled, as of now: nothing received is
        unfinished, and the consumer has delivered each to its end as the latest fetches know it.
        (After an assignment, a partition holding a backlog is not caught up until it is handled.)"""
        if self._poller is None or self._processor is None:
            return set()
        delivered = await self._poller.delivered_to_end()
        offsets = self._processor.offsets
        return {tp for tp in delivered & self._assigned if offsets.pending(*tp) == 0}

    def committed_positions(self) -> dict[TP, int]:
        """Per owned partition that has received messages: the position last committed (next offset
        to read); before the first commit, the first offset received, which is where the group was."""
        if self._processor is None:
            return {}
        committed = self._processor.offsets.committed_positions()
        return {tp: position for tp, position in committed.items() if tp in self._assigned}
