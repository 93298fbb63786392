"""Which partitions a worker owns, and what happens when they move (the poll thread's rebalance
callbacks: the consumer is blocked until they return; they reach the loop through the poller).

Assigned: restore the dedup ids and tables first, then accept messages. Revoked: let what was received
finish (bounded by ``drain_timeout``), commit it, checkpoint the tables of partitions that ended with
everything committed, then forget the partition. Lost: another member may own the partitions already,
so drop everything and commit nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from streams.agent import Agent
from streams.errors import TransportError
from streams.transport.poller import PollingConsumer
from streams.worker.committer import CommitBatch, Committer
from streams.worker.dedup import DedupStore
from streams.worker.processing import Processor
from streams.worker.stats import WorkerStats
from streams.worker.tables import AgentTables

log = logging.getLogger("streams.worker")

TP = tuple[str, int]


class Ownership:
    def __init__(
        self,
        agent: Agent[Any],
        poller: PollingConsumer,
        processor: Processor,
        committer: Committer,
        commit_here: Callable[[CommitBatch], None],
        stats: WorkerStats,
        dedup: DedupStore | None,
        owned: set[TP],
        tables: AgentTables | None = None,
    ) -> None:
        self._agent = agent
        self._poller = poller
        self._processor = processor
        self._committer = committer
        self._commit_here = commit_here
        self._stats = stats
        self._dedup = dedup
        self.owned = owned  # shared with the committer, which commits only owned partitions
        self._tables = tables

    # ----------------------------------------------------------------- poll thread

    def assigned(self, partitions: set[TP]) -> None:
        # Before any message of these partitions is handled: a redelivery must already be known, and
        # a handler must see its table as the changelog left it.
        if self._dedup is not None:
            self._dedup.restore(p for _, p in partitions)
        if self._tables is not None:
            tables = self._tables
            tables.restore((p for _, p in partitions), should_stop=lambda: self._poller.stopping)
            unrestored = {tp for tp in partitions if not tables.ready(tp[1])}
            if unrestored:
                # Shutdown cut the restore short: never handle a message against a partial table.
                log.info("agent %s: not taking %s (restore stopped)", self._agent.name, describe(unrestored))
                partitions = partitions - unrestored
        self._poller.run_on_loop(self._own(partitions))
        log.info("agent %s assigned %s", self._agent.name, describe(partitions))

    def revoked(self, partitions: set[TP]) -> None:
        poller, committer = self._poller, self._committer
        self._stats.revocations += 1
        # At shutdown the worker has drained already (close() revokes everything): do not wait twice.
        poller.run_on_loop(self._release(partitions, drain=not poller.stopping))
        batch = poller.run_on_loop(committer.begin(partitions))
        committed = None
        try:
            if batch is not None:
                self._commit_here(batch)
                committed = batch
        except (KafkaException, TransportError) as exc:
            log.warning("agent %s: commit on revocation failed: %s", self._agent.name, exc)
        finally:
            poller.run_on_loop(committer.end(committed))
        if self._tables is not None:
            self._tables.seal(p for _, p in poller.run_on_loop(self._settled(partitions)))
        poller.run_on_loop(self._forget(partitions))
        log.info("agent %s revoked %s", self._agent.name, describe(partitions))

    def lost(self, partitions: set[TP]) -> None:
        # Another member may already own them: committing now could overwrite its progress.
        self._poller.run_on_loop(self._release(partitions, drain=False))
        self._poller.run_on_loop(self._forget(partitions))
        log.warning("agent %s lost %s", self._agent.name, describe(partitions))

    # ----------------------------------------------------------------- loop

    async def _own(self, tps: set[TP]) -> None:
        self.owned.update(tps)
        self._stats.assignments += 1

    async def _release(self, tps: set[TP], *, drain: bool) -> None:
        """Hand back ``tps``: with ``drain``, first let their received messages (queued and started)
        finish, bounded by ``drain_timeout``, so the new owner starts where this worker stopped; then
        drop what has not started. Handlers still running keep going; their messages are redelivered."""
        if drain:
            timeout = self._agent.limits.drain_timeout
            left = await self._processor.finish_received(timeout, tps)
            if left:
                log.warning(
                    "agent %s: %d message(s) of revoked partitions unfinished after drain_timeout=%.0fs; "
                    "they will be redelivered to the new owner",
                    self._agent.name,
                    left,
                    timeout,
                )
        self._processor.drop(tps)

    async def _settled(self, tps: set[TP]) -> set[TP]:
        """The partitions of ``tps`` whose every received message is finished and committed: every
        table write applied for them is in the changelog, committed (what a local checkpoint needs)."""
        offsets = self._processor.offsets
        committable = offsets.committable()
        return {tp for tp in tps if tp in self.owned and offsets.pending(*tp) == 0 and tp not in committable}

    async def _forget(self, tps: set[TP]) -> None:
        self.owned.difference_update(tps)
        if self._dedup is not None:
            # Ids are kept per partition number: with several (priority) topics, partition p of
            # another topic may still be owned and need them.
            still = {p for _, p in self.owned}
            self._dedup.forget(p for _, p in tps if p not in still)
        if self._tables is not None:
            self._tables.forget(p for _, p in tps)
        self._processor.forget(tps)
        self._committer.forget(tps)


def describe(tps: set[TP]) -> str:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for topic, partition in sorted(tps):
        by_topic[topic].append(partition)
    return ", ".join(f"{t}{p}" for t, p in by_topic.items()) or "nothing"
