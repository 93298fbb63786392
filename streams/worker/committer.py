"""Commits: the finished positions of owned partitions and, for exactly-once, the outputs held below them.

A commit is prepared on the loop (which owns the offset tracker and the held outputs), executed by a
function that may block or run on another thread, and completed on the loop. One commit at a time, from
prepare to complete: two overlapping batches would both carry the same held outputs into two
transactions (duplicates downstream). No Kafka here: the worker (or the in-memory twin) supplies how a
batch is executed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from streams.errors import TransportError
from streams.runtime.offsets import OffsetTracker
from streams.worker.delivery import Delivery
from streams.worker.outbox import Output

log = logging.getLogger("streams.worker")

TP = tuple[str, int]


@dataclass(frozen=True)
class CommitBatch:
    positions: dict[TP, int]  # Kafka commit positions: the next offset to read
    outputs: list[Output]  # exactly-once: produced in the same transaction


class Committer:
    def __init__(
        self,
        offsets: OffsetTracker,
        delivery: Delivery,
        owned: Collection[TP],
        execute: Callable[[CommitBatch], Awaitable[None]],
    ) -> None:
        self._offsets = offsets
        self._delivery = delivery
        self._owned = owned  # the worker's live set of assigned partitions
        self._execute = execute
        self._gate = asyncio.Lock()
        self._periodic = True

    async def commit(self) -> None:
        """Commit what is finished now (nothing if nothing moved)."""
        async with self._gate:
            batch = self._prepare(None)
            if batch is not None:
                await self._execute(batch)
                self._complete(batch)

    async def run_periodically(
        self, on_fatal: Callable[[BaseException], None], idle: asyncio.Event | None = None
    ) -> None:
        """Commit every ``commit_interval``, or as soon as ``idle`` is set (everything received has
        finished) if the delivery mode says that pays, until :meth:`stop_periodic`; retriable failures
        are retried at the next tick, fatal ones (a fenced transactional producer) go to ``on_fatal``.

        Under load the interval batches many messages into one commit; a worker that has just finished
        all it had commits at once, so a quiet pipeline's hop costs a commit, not a commit interval
        (with exactly-once, outputs are invisible downstream until their transaction commits).

        An exactly-once commit that would carry no outputs (only offsets: e.g. a workflow engine reading
        its own completion event) waits for the interval instead: nobody waits to see it, and a
        transaction begun right after it, for the next message's outputs, would find the coordinator
        still finishing it and wait for a retry (measured: 2 to 12 ms added to the next workflow's
        start in the one-at-a-time workflows benchmark). Its offsets go with the next commit. So do
        changelog records, under either guarantee: committed at every idle moment, a table written
        per message logs a record per message instead of one per key and interval."""
        interval = self._delivery.commit_interval
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while self._periodic:
            if idle is None:
                await asyncio.sleep(interval)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(idle.wait(), max(0.0, due - loop.time()))
                idle.clear()
            if not self._periodic:
                return
            if idle is not None and loop.time() < due and not self._pays_to_commit_now():
                continue
            due = loop.time() + interval
            try:
                await self.commit()
            except TransportError as exc:
                if not exc.retriable:
                    on_fatal(exc)  # fenced or fatal: another worker owns our work now
                    return
                log.warning("commit failed, will retry: %s", exc)

    def _pays_to_commit_now(self) -> bool:
        """Whether a commit before the interval is worth it (the delivery mode decides: see
        ``pays_to_commit_early``)."""
        positions = {tp: offset for tp, offset in self._offsets.committable().items() if tp in self._owned}
        return self._delivery.pays_to_commit_early(positions)

    def stop_periodic(self) -> None:
        """The periodic loop ends after the commit in progress, if any: never cancel one (a cancelled
        await leaves its transaction running on another thread with its outputs still held, and the next
        commit would send them a second time)."""
        self._periodic = False

    async def begin(self, only: set[TP]) -> CommitBatch | None:
        """For a commit executed elsewhere (a rebalance callback on the poll thread): take the gate,
        released by :meth:`end`, and prepare the batch of ``only``."""
        await self._gate.acquire()
        try:
            return self._prepare(only)
        except BaseException:
            self._gate.release()
            raise

    async def end(self, committed: CommitBatch | None) -> None:
        try:
            if committed is not None:
                self._complete(committed)
        finally:
            self._gate.release()

    def forget(self, tps: set[TP]) -> None:
        """Revoked partitions: their uncommitted held outputs go with them (the new owner redoes them)."""
        for tp in tps:
            self._delivery.forget(tp)

    def _prepare(self, only: set[TP] | None) -> CommitBatch | None:
        positions = {
            tp: offset
            for tp, offset in self._offsets.committable().items()
            if tp in self._owned and (only is None or tp in only)
        }
        if not positions:
            return None
        return CommitBatch(positions, self._delivery.outputs_below(positions))

    def _complete(self, batch: CommitBatch) -> None:
        self._offsets.mark_committed(batch.positions)
        self._delivery.committed(batch.positions)
