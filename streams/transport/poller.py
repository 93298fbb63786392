"""A group consumer whose poll thread never stops polling, driven from an asyncio loop.

Owns the consumer's thread: ``consume``, pause/resume, at-least-once commits, group metadata and the
rebalance callbacks all run on it. librdkafka calls from any other thread can starve behind back-to-back
``consume()`` calls, or deadlock against a rebalance callback that is waiting for the loop, so the loop
only *asks* (:meth:`PollingConsumer.want_paused`, :meth:`PollingConsumer.commit`) and this thread acts.

Batches go to the loop one at a time: the next fetch waits until the loop accepted the last, so the loop
decides on backpressure after each batch and the pause is applied before the next fetch.
Must never decode, schedule or handle messages: that is the worker's job.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Coroutine, Sequence, Set
from datetime import datetime
from typing import Any, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.errors import TransportError
from streams.timestamps import epoch_millis
from streams.transport.records import consume_available, delivered_to_end

log = logging.getLogger("streams.worker")

TP = tuple[str, int]
T = TypeVar("T")
_POLL_TIMEOUT = 0.1


class RebalanceListener(Protocol):
    """What the consumer's owner does when partitions move; called on the poll thread, which is
    blocked until the call returns (use :meth:`PollingConsumer.run_on_loop` to reach the loop)."""

    def assigned(self, partitions: set[TP]) -> None: ...

    def revoked(self, partitions: set[TP]) -> None: ...

    def lost(self, partitions: set[TP]) -> None: ...


class PollingConsumer:
    """``on_batch`` (on the loop) receives each fetched batch's messages; ``on_error`` (on the loop) a
    fatal error of the consumer."""

    def __init__(
        self,
        consumer: Consumer,
        loop: asyncio.AbstractEventLoop,
        *,
        batch_size: int,
        on_batch: Callable[[list[Any]], None],
        on_error: Callable[[BaseException], None],
        start_at: datetime | None = None,
        track_group_metadata: bool = False,
    ) -> None:
        self._consumer = consumer
        self._loop = loop
        self._batch_size = batch_size
        self._on_batch = on_batch
        self._on_error = on_error
        self._start_at = start_at
        self._track_group_metadata = track_group_metadata
        self._listener: RebalanceListener | None = None
        self._stop = threading.Event()
        self._batch_accepted = threading.Event()
        self._batch_accepted.set()
        # True (every partition), False (none) or the topics whose partitions to pause (a lower
        # priority class while a higher one has work)
        self._wanted_paused: bool | frozenset[str] = False  # what the loop asked for
        self._paused: bool | frozenset[str] = False  # what this thread has applied
        # Partitions this consumer has paused. librdkafka keeps the flag across a revocation, and
        # resuming a partition that is not paused (or pausing one twice) can make it refetch from an
        # earlier offset, so pause and resume are only ever called on exactly the partitions that need it.
        self._paused_tps: set[TP] = set()
        self._commits: queue.SimpleQueue[tuple[list[TopicPartition], concurrent.futures.Future[None]]] = (
            queue.SimpleQueue()
        )
        self._end_queries: queue.SimpleQueue[concurrent.futures.Future[set[TP]]] = queue.SimpleQueue()
        self.group_metadata: Any = None
        self._thread = threading.Thread(target=self._poll_forever, name="poll", daemon=True)

    def start(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._listener = listener
        self._refresh_group_metadata()
        self._consumer.subscribe(
            list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._thread.start()

    # ------------------------------------------------------------------ asked by the loop

    def want_paused(self, paused: bool | Set[str]) -> None:
        """Before the next fetch, pause every assigned partition (True), none (False), or those of the
        given topics (the others resume)."""
        self._wanted_paused = paused if isinstance(paused, bool) else frozenset(paused)

    @property
    def paused(self) -> bool:
        """Whether fetching of any partition is paused now (applied by the poll thread)."""
        return bool(self._paused)

    @property
    def paused_partitions(self) -> int:
        """How many assigned partitions are paused now."""
        return len(self._paused_tps)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def commit(self, offsets: list[TopicPartition]) -> None:
        """Commit ``offsets`` synchronously on the poll thread, or here if it has stopped."""
        if self._stop.is_set():
            await self._loop.run_in_executor(None, self.commit_here, offsets)
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._commits.put((offsets, done))
        await asyncio.wrap_future(done)

    def commit_here(self, offsets: list[TopicPartition]) -> None:
        """Commit on the calling thread: the poll thread (rebalance callbacks) or after it stopped."""
        self._consumer.commit(offsets=offsets, asynchronous=False)

    async def delivered_to_end(self) -> set[TP]:
        """The assigned partitions whose every record the client has delivered (to the batches handed
        over before this returns), as far as the latest fetch responses know the partitions' ends.

        Answered by the poll thread between fetches (:func:`~.records.delivered_to_end`)."""
        if self._stop.is_set():
            return set()
        answer: concurrent.futures.Future[set[TP]] = concurrent.futures.Future()
        self._end_queries.put(answer)
        return await asyncio.wrap_future(answer)

    async def stop(self) -> None:
        """Stop fetching and wait for the poll thread to end; batches already fetched still arrive."""
        self._stop.set()
        await self._loop.run_in_executor(None, self._thread.join)
        self._answer_end_queries_with(set())  # asked as the thread stopped: nothing is known now

    def close(self) -> None:
        """Leave the group (blocking): revokes what is still assigned through the listener."""
        self._consumer.close()

    def run_on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """From the poll thread: run ``coroutine`` on the loop and wait for it, executing the commits
        the loop asks for meanwhile (the coroutine may be queued behind one that needs this thread)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        while True:
            try:
                return future.result(timeout=0.01)
            except concurrent.futures.TimeoutError:
                self._serve_commits()

    # ------------------------------------------------------------------ the poll thread

    def _poll_forever(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._batch_accepted.wait(_POLL_TIMEOUT):
                    continue
                self._apply_pause()
                self._serve_commits()
                messages = consume_available(self._consumer, self._batch_size, _POLL_TIMEOUT)
                self._refresh_group_metadata()
                if messages:
                    self._batch_accepted.clear()
                    self._loop.call_soon_threadsafe(self._hand_over, messages)
                # After the hand-over: an answer reaches the loop behind the batch it counts.
                self._answer_end_queries()
        except BaseException as exc:  # noqa: BLE001 - reported to the loop, which stops the worker
            self._loop.call_soon_threadsafe(self._on_error, exc)

    def _hand_over(self, messages: list[Any]) -> None:
        """Loop: the batch's messages, without the errors librdkafka delivers in their place."""
        try:
            good = []
            for message in messages:
                error = message.error()
                if error is None:
                    good.append(message)
                elif error.fatal():
                    self._on_error(TransportError(f"consumer failed: {error.str()}"))
                    return
                elif error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error.str())
            self._on_batch(good)
        except Exception as exc:  # noqa: BLE001 - a batch must never vanish into the loop's log
            self._on_error(exc)
        finally:
            self._batch_accepted.set()

    def _answer_end_queries(self) -> None:
        if self._end_queries.empty():
            return
        assignment = self._consumer.assignment()
        self._answer_end_queries_with(
            delivered_to_end(self._consumer, [(tp.topic, tp.partition) for tp in assignment])
        )

    def _answer_end_queries_with(self, at_end: set[TP]) -> None:
        while not self._end_queries.empty():
            answer = self._end_queries.get_nowait()
            if answer.set_running_or_notify_cancel():
                answer.set_result(at_end)

    def _refresh_group_metadata(self) -> None:
        """Keep the group metadata that exactly-once commits send with their offsets current. While
        the consumer closes, librdkafka may have none to give: the last one is still this member's
        (closing starts no new generation), so the revocation's commit goes on with it."""
        if not self._track_group_metadata:
            return
        try:
            self.group_metadata = self._consumer.consumer_group_metadata()
        except RuntimeError as exc:  # "Consumer group metadata not available"
            if self.group_metadata is None:
                raise
            log.debug("group metadata not available (%s): keeping the last", exc)

    def _apply_pause(self) -> None:
        wanted = self._wanted_paused
        if wanted == self._paused:
            return
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        self._paused = wanted
        pause = self._to_pause(assigned)
        paused = self._set_paused(pause, True)
        resumed = self._set_paused(assigned - pause, False)
        log.debug("paused %d and resumed %d partition(s)", paused, resumed)

    def _to_pause(self, tps: set[TP]) -> set[TP]:
        """Which of ``tps`` the applied pause state covers."""
        paused = self._paused
        if isinstance(paused, bool):
            return tps if paused else set()
        return {tp for tp in tps if tp[0] in paused}

    def _set_paused(self, tps: set[TP], paused: bool) -> int:
        """Pause the given partitions not paused yet, or resume those that are; returns how many."""
        change = tps - self._paused_tps if paused else tps & self._paused_tps
        if change:
            partitions = [TopicPartition(t, p) for t, p in sorted(change)]
            if paused:
                self._consumer.pause(partitions)
                self._paused_tps |= change
            else:
                self._consumer.resume(partitions)
                self._paused_tps -= change
        return len(change)

    def _serve_commits(self) -> None:
        while not self._commits.empty():
            offsets, done = self._commits.get_nowait()
            if not done.set_running_or_notify_cancel():
                continue  # its requester gave up (shutdown): a stale batch must not move offsets back
            try:
                self.commit_here(offsets)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                done.set_exception(exc)
            else:
                done.set_result(None)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._start_at is not None:
            partitions = _start_at_time(consumer, partitions, self._start_at)
        consumer.incremental_assign(partitions)
        tps = {(tp.topic, tp.partition) for tp in partitions}
        if not tps:
            return
        assert self._listener is not None
        self._listener.assigned(tps)
        # New partitions follow the current pause state; one paused before a revocation and assigned
        # back is still paused in librdkafka and would otherwise never resume.
        pause = self._to_pause(tps)
        self._set_paused(pause, True)
        self._set_paused(tps - pause, False)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        if not tps:
            return
        self._refresh_group_metadata()
        assert self._listener is not None
        self._listener.revoked(tps)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._listener is not None
        self._listener.lost({(tp.topic, tp.partition) for tp in partitions})


def _start_at_time(
    consumer: Consumer, partitions: list[TopicPartition], start: datetime
) -> list[TopicPartition]:
    """Partitions without a committed position start at the first message at or after ``start``."""
    committed = consumer.committed(partitions, timeout=30)
    fresh = [TopicPartition(tp.topic, tp.partition, epoch_millis(start)) for tp in committed if tp.offset < 0]
    found = {(tp.topic, tp.partition): tp.offset for tp in consumer.offsets_for_times(fresh, timeout=30)}
    return [
        TopicPartition(tp.topic, tp.partition, found.get((tp.topic, tp.partition), tp.offset))
        if tp.offset < 0
        else tp
        for tp in committed
    ]
