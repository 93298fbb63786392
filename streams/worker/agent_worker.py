"""One agent's consumer loop: receive, schedule by lane, handle with retries, dead-letter, commit.

Threads: a poll thread calls ``consume`` (and so runs rebalance callbacks); everything else happens on
the asyncio loop. The poll thread never stops polling while the worker runs, so a slow handler cannot
trip ``max.poll.interval.ms``; when too much is in flight the worker pauses its partitions instead.

Commits never pass an unfinished message (:class:`~streams.runtime.offsets.OffsetTracker`), and an
input is finished only after its outputs are acknowledged (at-least-once) or held for the transaction
that commits its offset (exactly-once).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import queue
import threading
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams import headers as hdr
from streams.agent import Agent
from streams.config import Settings
from streams.context import Context
from streams.errors import ConfigError, DeserializationError, StreamsError, TransportError
from streams.middleware import Chain, Middleware
from streams.runtime.backpressure import Backpressure
from streams.runtime.lanes import LaneScheduler
from streams.runtime.offsets import OffsetTracker
from streams.serde.codec import RecordDecoder, decode_key
from streams.serde.registry import SchemaRegistry
from streams.telemetry.tracing import TracingMiddleware, configure_tracing, tracing_active
from streams.transport.async_producer import AsyncProducer
from streams.worker.deadletter import dead_letter_headers
from streams.worker.dedup import DedupStore
from streams.worker.items import WorkItem
from streams.worker.outbox import DirectOutbox, Encoders, HeldOutbox, Output
from streams.worker.transactions import Transactions

log = logging.getLogger("streams.worker")

TP = tuple[str, int]
_POLL_BATCH = 500
_POLL_TIMEOUT = 0.1


class HandlerFailed(StreamsError):
    """A handler failed for good and the agent has no dead-letter topic: the worker stops, uncommitted."""


@dataclass(frozen=True)
class _CommitBatch:
    positions: dict[TP, int]
    outputs: list[Output]


@dataclass
class WorkerStats:
    received: int = 0
    processed: int = 0
    retries: int = 0
    dead_lettered: int = 0
    pauses: int = 0
    assignments: int = 0
    revocations: int = 0
    peak_in_flight: int = 0
    duplicates: int = 0


class AgentWorker:
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
        self._decoder = RecordDecoder(registry, agent.topic.value)
        self._encoders = Encoders(registry)
        self._scheduler: LaneScheduler[WorkItem] = LaneScheduler(agent.ordering, agent.concurrency)
        self._offsets = OffsetTracker()
        self._backpressure = Backpressure(max_messages=agent.max_in_flight, max_bytes=agent.max_bytes)
        self._running: dict[TP, set[asyncio.Task[None]]] = defaultdict(set)
        self._assigned: set[TP] = set()
        self._paused = False  # what the loop wants
        self._consumer_paused = False  # what the poll thread has applied
        self._stop_polling = threading.Event()
        self._batch_accepted = threading.Event()
        self._batch_accepted.set()
        # One commit at a time, from prepare to complete: two overlapping batches would both carry
        # the same held outputs into two transactions (duplicates downstream).
        self._commit_gate = asyncio.Lock()
        self._committing = True  # the periodic committer runs while this holds
        self._commit_requests: queue.SimpleQueue[tuple[_CommitBatch, concurrent.futures.Future[None]]] = (
            queue.SimpleQueue()
        )
        self._group_metadata: Any = None
        self._failure: BaseException | None = None
        self._failed = asyncio.Event()
        self._finished_one = asyncio.Event()  # wakes drains (shutdown, revocation) as messages finish
        self._exactly_once = agent.guarantee == "exactly_once"
        self._held: dict[TP, dict[int, list[Output]]] = defaultdict(dict)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Consumer | None = None
        self._producer: AsyncProducer | None = None
        self._transactions: Transactions | None = None
        self._dedup: DedupStore | None = None
        self._extra_middleware = list(middleware)
        self._middleware = Chain(self._extra_middleware)

    # ----------------------------------------------------------------- life cycle

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (then drain and commit) or a fatal error (then raise it)."""
        self._loop = asyncio.get_running_loop()
        tracer_provider = configure_tracing(self.agent.app) if self.settings.streams_tracing else None
        if self.settings.streams_tracing and tracing_active():
            # Spans only when something records them; otherwise Context copies the trace context from
            # input to output, which is what "propagate-only" needs, at a fraction of the cost.
            # Tracing is the outermost layer, so every other middleware runs inside the message's span.
            tracing = TracingMiddleware(self.agent.name, self.agent.group_id)
            self._middleware = Chain([tracing, *self._extra_middleware])
        agent = self.agent
        producer_overrides: dict[str, Any] = {}
        if self._exactly_once:
            producer_overrides["transactional.id"] = f"{agent.group_id}.{self.worker_id}"
            # A crashed worker's open transaction blocks read_committed readers of its outputs until it
            # times out; transactions here last ~100 ms, so 10 s (not Kafka's 60 s) is ample.
            producer_overrides["transaction.timeout.ms"] = 10_000
        try:
            self._producer = AsyncProducer(
                self.settings.producer_config(**producer_overrides),
                on_fatal=self._fail_from_thread,
            )
        except KafkaException as exc:
            raise ConfigError(f"agent {agent.name}: invalid producer settings: {exc.args[0].str()}") from exc
        if agent.dedup:
            self._dedup = DedupStore(self.settings, agent.dedup_changelog_topic, self._producer)
        consumer_defaults: dict[str, Any] = {
            # Heartbeats come from librdkafka's thread, so a short session only detects dead workers
            # sooner (10 s, not 45 s); slow handlers are covered by the poll thread, not by this.
            "session.timeout.ms": 10_000,
        }
        consumer_overrides: dict[str, Any] = {
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": "latest" if agent.start == "latest" else "earliest",
            "enable.auto.offset.store": False,
            "client.id": f"{agent.group_id}.{self.worker_id}",
        }
        consumer_config = self.settings.consumer_config(
            agent.group_id, **{**consumer_defaults, **agent.consumer_config, **consumer_overrides}
        )
        try:
            self._consumer = Consumer(consumer_config)
        except KafkaException as exc:
            self._producer.close(0)
            raise ConfigError(f"agent {agent.name}: invalid consumer settings: {exc.args[0].str()}") from exc
        if self._exactly_once:
            self._transactions = Transactions(self._producer)
            self._group_metadata = self._consumer.consumer_group_metadata()
            await self._loop.run_in_executor(None, self._transactions.init)
        self._consumer.subscribe(
            [agent.topic.name], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        poller = threading.Thread(target=self._poll_forever, name=f"poll-{agent.name}", daemon=True)
        poller.start()
        log.info(
            "agent %s started (worker %s, group %s, %s, ordering=%s, concurrency=%d)",
            agent.name,
            self.worker_id,
            agent.group_id,
            agent.guarantee,
            agent.ordering,
            agent.concurrency,
        )
        dispatcher = asyncio.create_task(self._dispatch(), name=f"dispatch-{agent.name}")
        committer = asyncio.create_task(self._commit_periodically(), name=f"commit-{agent.name}")
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(self._failed.wait())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed.cancel()
        await self._shutdown(poller, dispatcher, committer)
        if tracer_provider is not None:
            await self._loop.run_in_executor(None, tracer_provider.force_flush)
        if self._failure is not None:
            raise self._failure

    async def _shutdown(
        self, poller: threading.Thread, dispatcher: asyncio.Task[None], committer: asyncio.Task[None]
    ) -> None:
        assert self._loop is not None and self._consumer is not None and self._producer is not None
        pending = self._offsets.total_pending
        log.info("agent %s draining: finishing %d received message(s)", self.agent.name, pending)
        # Let a commit in progress finish, never cancel it: a cancelled await leaves its transaction
        # running on another thread with its outputs still held, and the final commit would send
        # them a second time. It may need the poll thread, so stop that only afterwards.
        self._committing = False
        [outcome] = await asyncio.gather(committer, return_exceptions=True)
        if isinstance(outcome, BaseException):
            log.error("agent %s: committer failed: %s", self.agent.name, outcome)
        self._stop_polling.set()
        await self._loop.run_in_executor(None, poller.join)
        # Nothing new arrives now. Finish everything already received, queued or started: lanes finish
        # out of offset order, so stopping at the started ones would leave the commit far below work
        # already done, and a restart would repeat it.
        if self._failure is None:
            await self._finish_received(self.agent.drain_timeout)
        dispatcher.cancel()
        unfinished = self._offsets.total_pending
        if unfinished:
            await self._cancel_running()
        if self._failure is None:
            await self._commit()
        if unfinished:
            log.warning(
                "agent %s: %d message(s) unfinished after drain_timeout=%.0fs; %d message(s) from the "
                "commit position on will be redelivered",
                self.agent.name,
                unfinished,
                self.agent.drain_timeout,
                self._offsets.redeliverable(),
            )
        # close() revokes whatever is still assigned; its callback commits what finished meanwhile.
        await self._loop.run_in_executor(None, self._consumer.close)
        undelivered = await self._loop.run_in_executor(None, self._producer.close)
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

    async def _finish_received(self, seconds: float, only: set[TP] | None = None) -> int:
        """Wait (at most ``seconds``) until every received message (of ``only``) is finished or the
        worker failed; returns how many are still unfinished.

        Wakes on :attr:`_finished_one`, which every finished message sets (cheap while set: nobody
        clears it outside of this wait).
        """
        assert self._loop is not None
        offsets = self._offsets

        def unfinished() -> int:
            if only is None:
                return offsets.total_pending
            return sum(offsets.pending(topic, partition) for topic, partition in only)

        deadline = self._loop.time() + seconds
        while (left := unfinished()) and not self._failed.is_set():
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                break
            self._finished_one.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished_one.wait(), remaining)
        return left

    async def _cancel_running(self) -> None:
        """Stop handlers still running after the drain: their messages stay uncommitted."""
        tasks = [task for running in self._running.values() for task in running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _fail_from_thread(self, error: BaseException) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._fail, error)

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
            log.error("agent %s failed: %s", self.agent.name, error)
        self._failed.set()
        self._finished_one.set()  # a drain in progress stops waiting

    # ----------------------------------------------------------------- receiving

    def _poll_forever(self) -> None:
        assert self._consumer is not None and self._loop is not None
        try:
            batch = min(_POLL_BATCH, self.agent.max_in_flight)
            while not self._stop_polling.is_set():
                # Hand over one batch at a time: the loop decides on backpressure after each, and the
                # pause is applied here before the next fetch, so in-flight work overshoots its bound
                # by at most one batch.
                if not self._batch_accepted.wait(_POLL_TIMEOUT):
                    continue
                self._apply_pause_state()
                self._serve_commit_requests()
                messages = self._consumer.consume(num_messages=batch, timeout=_POLL_TIMEOUT)
                if self._exactly_once:
                    self._group_metadata = self._consumer.consumer_group_metadata()
                if messages:
                    self._batch_accepted.clear()
                    self._loop.call_soon_threadsafe(self._accept, messages)
        except BaseException as exc:  # noqa: BLE001 - reported to the loop, which stops the worker
            self._loop.call_soon_threadsafe(self._fail, exc)

    def _accept(self, messages: list[Any]) -> None:
        try:
            self._accept_batch(messages)
        finally:
            self._batch_accepted.set()

    def _accept_batch(self, messages: list[Any]) -> None:
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
            if (item.topic, item.partition) not in self._assigned:
                continue  # fetched just before a revocation: the new owner reads it from the commit
            self.stats.received += 1
            self._offsets.track(item.topic, item.partition, item.offset)
            self._backpressure.add(item.size)
            self._scheduler.submit(item)
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self._backpressure.messages)
        if not self._paused and self._backpressure.should_pause:
            self._set_paused(True)

    def _set_paused(self, paused: bool) -> None:
        """Ask the poll thread to pause or resume every assigned partition.

        Only the poll thread calls pause/resume: from the loop they can block on librdkafka while the
        poll thread sits in a rebalance callback waiting for the loop, which would deadlock.
        """
        self._paused = paused
        if paused:
            self.stats.pauses += 1

    def _apply_pause_state(self) -> None:
        """Poll thread: bring the consumer's paused state in line with what the loop asked for."""
        assert self._consumer is not None
        wanted = self._paused
        if wanted == self._consumer_paused:
            return
        partitions = self._consumer.assignment()
        if partitions:
            (self._consumer.pause if wanted else self._consumer.resume)(partitions)
        self._consumer_paused = wanted
        log.debug(
            "agent %s %s %d partition(s)", self.agent.name, "paused" if wanted else "resumed", len(partitions)
        )

    # ----------------------------------------------------------------- handling

    async def _dispatch(self) -> None:
        while True:
            item = await self._scheduler.next_ready()
            tp = (item.topic, item.partition)
            task = asyncio.create_task(self._process(item))
            self._running[tp].add(task)
            task.add_done_callback(self._running[tp].discard)

    async def _process(self, item: WorkItem) -> None:
        try:
            deliveries, handled_id = await self._handle(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - stop the worker; the offset stays uncommitted
            self._fail(exc)
            return
        # The key's next message may start now: the idempotent producer keeps this one's outputs in
        # order ahead of it, and only the commit waits for the broker's acknowledgement. Dedup agents
        # hold the slot until the id is durable, so a crash can repeat at most `concurrency` side
        # effects instead of everything acknowledged-but-unconfirmed.
        if self._dedup is None:
            self._scheduler.finished(item)
        try:
            for delivery in deliveries:
                await delivery
            if handled_id is not None and self._dedup is not None:
                # Only now, with every output acknowledged: a durable id means "outputs delivered", so a
                # redelivery it turns away has nothing left to send. Recorded any earlier, the id could
                # reach the broker before the outputs and a crash in between would lose them for good.
                await (await self._dedup.record(item.partition, handled_id))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - an output is lost for good: stop, uncommitted
            self._fail(exc)
            return
        if self._dedup is not None:
            self._scheduler.finished(item)
        self._offsets.done(item.topic, item.partition, item.offset)
        self._finished_one.set()
        self._backpressure.remove(item.size)
        if self._paused and self._backpressure.should_resume:
            self._set_paused(False)

    async def _handle(self, item: WorkItem) -> tuple[list[asyncio.Future[Any]], str | None]:
        """Run the handler (with retries) or dead-letter the message. Returns the deliveries its outputs
        still wait for (exactly-once holds outputs instead: none) and, when the handler succeeded on a
        dedup agent, the id to record once they are acknowledged."""
        agent = self.agent
        message = item.message
        try:
            value = self._decoder(message.value())
            key = decode_key(item.key, agent.topic.key)
        except DeserializationError as exc:
            if exc.retriable:
                raise
            return await self._dead_letter(item, exc, attempts=0), None
        headers = hdr.as_text(message.headers())
        dedup_id = hdr.message_identity(headers, item.topic, item.partition, item.offset)
        if self._dedup is not None and self._dedup.seen(item.partition, dedup_id):
            self.stats.duplicates += 1
            return [], None
        deliveries: list[asyncio.Future[Any]] = []
        attempt = 1
        while True:
            outbox = (
                HeldOutbox(self._encoders)
                if self._exactly_once
                else DirectOutbox(self._require_producer(), self._encoders)
            )
            ctx = Context(
                agent=agent.name,
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                key=key,
                headers=headers,
                timestamp_ms=message.timestamp()[1],
                attempt=attempt,
                outbox=outbox,
                middleware=self._middleware,
                propagate_trace=self.settings.streams_tracing,
            )
            try:
                if self._middleware:
                    await self._middleware.handle(ctx, functools.partial(agent.handler, value, ctx))
                else:
                    await agent.handler(value, ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any handler error is retried or dead-lettered
                if isinstance(outbox, DirectOutbox):
                    deliveries += outbox.pending  # sent before the failure: they go out regardless
                if agent.retry.should_retry(exc, attempt):
                    self.stats.retries += 1
                    log.debug("agent %s: retrying offset %d after %s", agent.name, item.offset, exc)
                    await asyncio.sleep(agent.retry.delay(attempt))
                    attempt += 1
                    continue
                if not agent.dead_letter:
                    raise HandlerFailed(
                        f"agent {agent.name} failed on {item.topic}[{item.partition}]@{item.offset} after "
                        f"{attempt} attempt(s) and has no dead-letter topic: {type(exc).__name__}: {exc}"
                    ) from exc
                # Dead letters record no id: `streams dlq replay` sends them back with their identity.
                return deliveries + await self._dead_letter(item, exc, attempts=attempt), None
            if isinstance(outbox, HeldOutbox):
                if outbox.outputs:
                    self._held[(item.topic, item.partition)][item.offset] = outbox.outputs
            else:
                deliveries += outbox.pending
            self.stats.processed += 1
            return deliveries, dedup_id

    async def _dead_letter(
        self, item: WorkItem, error: BaseException, attempts: int
    ) -> list[asyncio.Future[Any]]:
        agent = self.agent
        log.warning(
            "agent %s: dead-lettering %s[%d]@%d after %d attempt(s): %s: %s",
            agent.name,
            item.topic,
            item.partition,
            item.offset,
            attempts,
            type(error).__name__,
            error,
        )
        output = Output(
            agent.dead_letter_topic,
            item.message.value(),
            item.key,
            dead_letter_headers(item.message, agent.name, error, attempts),
        )
        self.stats.dead_lettered += 1
        if self._exactly_once:
            self._held[(item.topic, item.partition)].setdefault(item.offset, []).append(output)
            return []
        delivered = await self._require_producer().send(
            output.topic, output.value, output.key, output.headers
        )
        return [delivered]

    def _require_producer(self) -> AsyncProducer:
        assert self._producer is not None
        return self._producer

    # ----------------------------------------------------------------- committing
    #
    # A commit is prepared on the loop (which owns the offset tracker and held outputs), executed on
    # a thread that may block, and completed on the loop. Consumer calls from any thread but the poll
    # thread can starve behind its back-to-back consume() calls, so the poll thread executes
    # at-least-once commits and supplies the group metadata transactions need.

    async def _commit_periodically(self) -> None:
        interval = 0.1 if self._exactly_once else 0.5
        while self._committing:
            await asyncio.sleep(interval)
            if not self._committing:
                return
            try:
                await self._commit(via_poll_thread=True)
            except (KafkaException, TransportError) as exc:
                if isinstance(exc, TransportError) and not exc.retriable:
                    self._fail(exc)  # fenced or fatal: another worker owns our work now
                    return
                log.warning("agent %s: commit failed, will retry: %s", self.agent.name, exc)

    async def _commit(self, *, via_poll_thread: bool = False) -> None:
        assert self._loop is not None
        async with self._commit_gate:
            batch = self._prepare_commit(None)
            if batch is None:
                return
            if via_poll_thread and not self._exactly_once:
                done: concurrent.futures.Future[None] = concurrent.futures.Future()
                self._commit_requests.put((batch, done))
                await asyncio.wrap_future(done)
            else:
                await self._loop.run_in_executor(None, self._execute_commit, batch)
            self._complete_commit(batch)

    async def _begin_commit(self, only: set[TP]) -> _CommitBatch | None:
        """For the revocation path: take the gate (released by :meth:`_end_commit`) and prepare."""
        await self._commit_gate.acquire()
        try:
            return self._prepare_commit(only)
        except BaseException:
            self._commit_gate.release()
            raise

    async def _end_commit(self, committed: _CommitBatch | None) -> None:
        try:
            if committed is not None:
                self._complete_commit(committed)
        finally:
            self._commit_gate.release()

    def _prepare_commit(self, only: set[TP] | None) -> _CommitBatch | None:
        """Loop: the finished positions of owned partitions (``only`` narrows them) and, for
        exactly-once, the held outputs of every message below those positions."""
        positions = {
            tp: offset
            for tp, offset in self._offsets.committable().items()
            if tp in self._assigned and (only is None or tp in only)
        }
        if not positions:
            return None
        outputs = [
            output
            for tp, position in positions.items()
            for offset in sorted(o for o in self._held.get(tp, {}) if o < position)
            for output in self._held[tp][offset]
        ]
        return _CommitBatch(positions, outputs)

    def _execute_commit(self, batch: _CommitBatch) -> None:
        """A thread that may block (the gate keeps commits from overlapping)."""
        assert self._consumer is not None
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.positions.items()]
        if self._transactions is not None:
            self._transactions.commit(batch.outputs, offsets, self._group_metadata)
        else:
            self._consumer.commit(offsets=offsets, asynchronous=False)

    def _complete_commit(self, batch: _CommitBatch) -> None:
        """Loop: record the new positions and drop the outputs that are now committed."""
        self._offsets.mark_committed(batch.positions)
        for tp, position in batch.positions.items():
            held = self._held.get(tp)
            if held:
                for offset in [o for o in held if o < position]:
                    del held[offset]

    def _serve_commit_requests(self) -> None:
        """Poll thread: execute the at-least-once commits the loop asked for."""
        while not self._commit_requests.empty():
            batch, done = self._commit_requests.get_nowait()
            if not done.set_running_or_notify_cancel():
                continue  # its requester gave up (shutdown): a stale batch must not move offsets back
            try:
                self._execute_commit(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                done.set_exception(exc)
            else:
                done.set_result(None)

    # ----------------------------------------------------------------- rebalancing

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if isinstance(self.agent.start, datetime):
            partitions = self._start_at_time(consumer, partitions, self.agent.start)
        consumer.incremental_assign(partitions)
        tps = {(tp.topic, tp.partition) for tp in partitions}
        if not tps:
            return
        if self._dedup is not None:
            # Before any message of these partitions is handled: a redelivery must already be known.
            self._dedup.restore(p for _, p in tps)
        self._call_in_loop(self._assigned.update, tps)
        self.stats.assignments += 1
        # Set the pause state of new partitions both ways: librdkafka keeps a partition's pause flag
        # across revocation, so one paused here before and assigned back would otherwise never resume.
        new_partitions = [TopicPartition(t, p) for t, p in tps]
        (consumer.pause if self._consumer_paused else consumer.resume)(new_partitions)
        log.info("agent %s assigned %s", self.agent.name, _describe(tps))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        if not tps:
            return
        self.stats.revocations += 1
        # At shutdown the worker has drained already (close() revokes everything): do not wait twice.
        self._run_in_loop(self._release(tps, drain=not self._stop_polling.is_set()))
        self._group_metadata = consumer.consumer_group_metadata()
        batch = self._run_in_loop(self._begin_commit(tps))
        committed = None
        try:
            if batch is not None:
                self._execute_commit(batch)
                committed = batch
        except (KafkaException, TransportError) as exc:
            log.warning("agent %s: commit on revocation failed: %s", self.agent.name, exc)
        finally:
            self._run_in_loop(self._end_commit(committed))
        self._call_in_loop(self._forget, tps)
        log.info("agent %s revoked %s", self.agent.name, _describe(tps))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may already own them: committing now could overwrite its progress.
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self._run_in_loop(self._release(tps, drain=False))
        self._call_in_loop(self._forget, tps)
        log.warning("agent %s lost %s", self.agent.name, _describe(tps))

    async def _release(self, tps: set[TP], *, drain: bool) -> None:
        """Hand back ``tps``: with ``drain``, first let their received messages (queued and started)
        finish, bounded by ``drain_timeout``, so the new owner starts where this worker stopped; then
        drop what has not started. Handlers still running keep going; their messages are redelivered."""
        if drain:
            left = await self._finish_received(self.agent.drain_timeout, tps)
            if left:
                log.warning(
                    "agent %s: %d message(s) of revoked partitions unfinished after drain_timeout=%.0fs; "
                    "they will be redelivered to the new owner",
                    self.agent.name,
                    left,
                    self.agent.drain_timeout,
                )
        for topic, partition in tps:
            for item in self._scheduler.drop_partition(topic, partition):
                self._backpressure.remove(item.size)
        if self._paused and self._backpressure.should_resume:
            self._set_paused(False)

    def _forget(self, tps: set[TP]) -> None:
        if self._dedup is not None:
            self._dedup.forget(p for _, p in tps)
        for topic, partition in tps:
            self._assigned.discard((topic, partition))
            self._offsets.revoke(topic, partition)
            self._held.pop((topic, partition), None)

    def _start_at_time(
        self, consumer: Consumer, partitions: list[TopicPartition], start: datetime
    ) -> list[TopicPartition]:
        """Partitions without a committed position start at the first message at or after ``start``."""
        committed = consumer.committed(partitions, timeout=30)
        fresh = [
            TopicPartition(tp.topic, tp.partition, int(start.timestamp() * 1000))
            for tp in committed
            if tp.offset < 0
        ]
        found = {(tp.topic, tp.partition): tp.offset for tp in consumer.offsets_for_times(fresh, timeout=30)}
        return [
            TopicPartition(tp.topic, tp.partition, found.get((tp.topic, tp.partition), tp.offset))
            if tp.offset < 0
            else tp
            for tp in committed
        ]

    def _run_in_loop(self, coroutine: Any) -> Any:
        """Run a coroutine on the loop from the poll thread (rebalance callbacks) and wait for it.

        While waiting, keep executing the commits the loop asks of this thread: the coroutine may be
        queued behind a periodic commit that needs exactly that.
        """
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        while True:
            try:
                return future.result(timeout=0.01)
            except concurrent.futures.TimeoutError:
                self._serve_commit_requests()

    @staticmethod
    async def _as_coroutine(function: Any, *args: Any) -> Any:
        return function(*args)

    def _call_in_loop(self, function: Any, *args: Any) -> None:
        self._run_in_loop(self._as_coroutine(function, *args))

    # ----------------------------------------------------------------- observing
    #
    # Read-only views for telemetry (metrics, health, heartbeats). Call them on the worker's event
    # loop: the sets and maps they copy belong to the loop, and copying them from another thread could
    # catch them mid-update.

    def assigned_partitions(self) -> list[TP]:
        """The partitions this worker owns now, sorted."""
        return sorted(self._assigned)

    def in_flight(self) -> int:
        """Messages received and not finished yet: waiting for their lane or being handled."""
        return self._backpressure.messages

    def is_paused(self) -> bool:
        """Whether fetching is paused for backpressure (the poll thread pauses every owned partition)."""
        return self._consumer_paused

    def is_draining(self) -> bool:
        """Whether shutdown has begun: polling stopped, started handlers finishing."""
        return self._stop_polling.is_set()

    def failure(self) -> BaseException | None:
        """The error that stopped (or is stopping) this worker, if any."""
        return self._failure

    def committed_positions(self) -> dict[TP, int]:
        """Per owned partition that has received messages: the position last committed (next offset
        to read); before the first commit, the first offset received, which is where the group was."""
        # The tracker keeps this per partition but exposes no accessor for it; read, never written.
        tracked = self._offsets._partitions
        return {
            tp: committed
            for tp in self._assigned
            if (state := tracked.get(tp)) is not None and (committed := state.committed) is not None
        }


def _describe(tps: set[TP]) -> str:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for topic, partition in sorted(tps):
        by_topic[topic].append(partition)
    return ", ".join(f"{t}{p}" for t, p in by_topic.items()) or "nothing"
