"""Offset bookkeeping: which received offsets are finished, and how far each partition may be committed.

Messages of one partition finish out of order when they run concurrently (different keys), so the
consumer may only commit up to the *lowest unfinished* offset: committing past it would lose that
message if the process died. Kafka's committed offset is "the next offset to read", so the commit
position is that lowest unfinished offset, or the highest offset seen + 1 once everything is finished.

Offsets within a partition are increasing but not contiguous (compacted topics, transaction markers),
so the position is derived from the offsets actually received, never from ``offset + 1`` arithmetic:
a gap never blocks a commit.

This module owns only that arithmetic. It never talks to Kafka; the consumer loop calls
:meth:`OffsetTracker.track` on receipt, :meth:`OffsetTracker.done` when a message is fully handled
(succeeded or dead-lettered), and commits what :meth:`OffsetTracker.committable` returns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

TopicPartition = tuple[str, int]
"""A ``(topic, partition)`` pair, the key of every per-partition map in the runtime."""


class PartitionOffsets:
    """Received and finished offsets of one partition, and its commit position.

    ``track`` and ``done`` are amortised O(1): received offsets wait in a FIFO, and ``done`` only pops
    the finished prefix of it, so each offset is appended and popped once however finishes interleave.
    """

    __slots__ = ("_committed", "_highest", "_order", "_unfinished")

    def __init__(self) -> None:
        # Every tracked offset not yet popped, in receipt (= increasing) order. Its head is the lowest
        # unfinished offset once the finished prefix has been popped.
        self._order: deque[int] = deque()
        # Tracked offsets whose message is not finished yet: O(1) "is this pending?" and pending count.
        self._unfinished: set[int] = set()
        self._highest: int | None = None
        self._committed: int | None = None

    def track(self, offset: int) -> None:
        """Record a received offset; it must be higher than every offset tracked before.

        Raises ValueError otherwise: the FIFO's order is what makes ``done`` cheap, and a consumer that
        seeks backwards must :meth:`OffsetTracker.revoke` the partition first.
        """
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if self._highest is not None and offset <= self._highest:
            raise ValueError(f"offset {offset} tracked after {self._highest}: offsets must increase")
        if self._committed is None:
            # The first received offset is where the group's position already is: nothing to commit
            # until something finishes.
            self._committed = offset
        self._highest = offset
        self._order.append(offset)
        self._unfinished.add(offset)

    def done(self, offset: int) -> bool:
        """Mark an offset finished; returns False (and changes nothing) if it is not pending."""
        try:
            self._unfinished.remove(offset)
        except KeyError:
            return False
        order, unfinished = self._order, self._unfinished
        while order and order[0] not in unfinished:
            order.popleft()
        return True

    @property
    def position(self) -> int | None:
        """The offset to commit now: the lowest unfinished offset, else highest seen + 1 (None if none)."""
        if self._order:
            return self._order[0]
        return None if self._highest is None else self._highest + 1

    @property
    def highest(self) -> int | None:
        """The highest offset tracked so far."""
        return self._highest

    @property
    def committed(self) -> int | None:
        """The highest position recorded by :meth:`mark_committed` (initially the first tracked offset)."""
        return self._committed

    @property
    def advanced(self) -> int | None:
        """The position if it is beyond :attr:`committed`, else None: what is worth committing now."""
        position = self.position
        if position is None or self._committed is None or position <= self._committed:
            return None
        return position

    @property
    def pending(self) -> int:
        """Tracked offsets whose message is not finished."""
        return len(self._unfinished)

    @property
    def redeliverable(self) -> int:
        """Received messages at or above the position, finished or not: what a consumer starting from
        the position would receive again."""
        return len(self._order)

    def mark_committed(self, offset: int) -> None:
        """Record that ``offset`` was committed; an older (lower) commit arriving late changes nothing."""
        if self._committed is None or offset > self._committed:
            self._committed = offset


class OffsetTracker:
    """Per-partition offset bookkeeping for one consumer; see the module docstring.

    ``stale_completions`` counts ``done`` calls for offsets that are not pending: unknown or revoked
    partitions, offsets already finished, or never tracked. They happen legitimately when a handler
    finishes after its partition was revoked, so they are counted (for metrics and tests), not raised.
    """

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._total_pending = 0
        self.stale_completions = 0

    def track(self, topic: str, partition: int, offset: int) -> None:
        """Record a received message; offsets must increase per partition (gaps are fine)."""
        state = self._partitions.get((topic, partition))
        if state is None:
            state = self._partitions[(topic, partition)] = PartitionOffsets()
        state.track(offset)
        self._total_pending += 1

    def received(self, topic: str, partition: int, offset: int) -> bool:
        """Whether ``offset`` is at or below the highest offset tracked for the partition: a message
        received already (a client that refetches an earlier offset delivers it a second time)."""
        state = self._partitions.get((topic, partition))
        return state is not None and state.highest is not None and offset <= state.highest

    def done(self, topic: str, partition: int, offset: int) -> bool:
        """Mark a message fully handled; returns False, counting a stale completion, if it was not pending."""
        state = self._partitions.get((topic, partition))
        if state is None or not state.done(offset):
            self.stale_completions += 1
            return False
        self._total_pending -= 1
        return True

    def committable(self) -> dict[TopicPartition, int]:
        """The offset to commit for every partition whose position moved past its last committed one.

        The offsets are Kafka commit positions (next offset to read). They stay committable until
        :meth:`mark_committed` records them, so a failed commit is simply retried by the next call.
        """
        positions: dict[TopicPartition, int] = {}
        for tp, state in self._partitions.items():
            position = state.advanced
            if position is not None:
                positions[tp] = position
        return positions

    def mark_committed(self, positions: Mapping[TopicPartition, int]) -> None:
        """Record successful commits; partitions revoked meanwhile are ignored."""
        for tp, offset in positions.items():
            state = self._partitions.get(tp)
            if state is not None:
                state.mark_committed(offset)

    def revoke(self, topic: str, partition: int) -> int | None:
        """Forget a partition; returns the position still worth committing for it, or None.

        Its unfinished messages stop counting as pending; their later ``done`` calls are stale.
        """
        state = self._partitions.pop((topic, partition), None)
        if state is None:
            return None
        self._total_pending -= state.pending
        return state.advanced

    def committed_positions(self) -> dict[TopicPartition, int]:
        """Per tracked partition: the position last committed, or before any commit the first offset
        received (where the group's position was)."""
        return {tp: state.committed for tp, state in self._partitions.items() if state.committed is not None}

    def settled(self) -> set[TopicPartition]:
        """The tracked partitions whose every received message is finished and committed."""
        return {
            tp
            for tp, state in self._partitions.items()
            if not state.pending and state.committed is not None and state.committed == state.position
        }

    def pending(self, topic: str, partition: int) -> int:
        """Unfinished messages of one partition (0 for a partition not tracked)."""
        state = self._partitions.get((topic, partition))
        return 0 if state is None else state.pending

    def redeliverable(self) -> int:
        """Received messages, over all tracked partitions, that a restart from the current positions
        would deliver again (the unfinished ones and every finished one above them)."""
        return sum(state.redeliverable for state in self._partitions.values())

    @property
    def total_pending(self) -> int:
        """Unfinished messages over all tracked partitions."""
        return self._total_pending

    def partitions(self) -> list[TopicPartition]:
        """The partitions currently tracked."""
        return list(self._partitions)
