"""Lane scheduling: which received messages may start now, without breaking the order users rely on.

Every message belongs to a *lane*; messages of one lane start in submission order and never overlap,
messages of different lanes run concurrently up to a limit. The ordering mode picks the lane:

- ``"key"``: ``(topic, partition, key)``, so per-key order holds even with many handlers per partition
  (messages without a key share one lane per partition, as Kafka gives them no other order);
- ``"partition"``: ``(topic, partition)``, the classic one-at-a-time-per-partition consumer;
- ``"unordered"``: ``(topic, partition, offset)``, a lane per message.

Lanes whose head may start wait in a FIFO of *ready* lanes; a lane goes to the back of it each time
one of its messages finishes, so ready lanes take turns (round-robin) and a hot key with thousands of
queued messages holds at most one slot while every other key still gets its turn.

Topics may be ranked (priority classes: rank 0 first). Each rank has its own ready FIFO, and a free slot
goes to the highest rank with a ready lane, except that every lower rank with ready lanes earns
``min_share / (1 - min_share)`` of a start for each start it waited through, and takes the slot once it
has earned a whole one: so it gets at least ``min_share`` of the starts while it has work, and a flood
of a higher rank never starves it. Ranks never affect order: a lane is within one topic.

This module owns only that decision. It does not run handlers, retry, or commit: the consumer loop
calls :meth:`LaneScheduler.submit` on receipt, starts whatever :meth:`LaneScheduler.take_ready` (or,
waiting, :meth:`LaneScheduler.next_ready`) returns, and calls :meth:`LaneScheduler.finished` once that
message is fully handled (retries included, so a retrying message keeps its lane blocked and key order
holds).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Hashable, Mapping
from typing import Generic, Literal, Protocol, TypeVar, get_args

from streams.errors import ConfigError

Ordering = Literal["key", "partition", "unordered"]
"""How much order the scheduler preserves; see the module docstring."""

LaneId = tuple[Hashable, ...]
"""A lane: ``(topic, partition, key)``, ``(topic, partition)`` or ``(topic, partition, offset)``."""


class LaneItem(Protocol):
    """What the scheduler needs to know about a message. ``key`` must be hashable: pass the raw key
    bytes (equal bytes mean the same key and partition, and need no decoding)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> Hashable | None: ...


M = TypeVar("M", bound=LaneItem)

_SPARE_LANES = 64


class _Lane(Generic[M]):
    __slots__ = ("queue", "rank", "running", "tp")

    def __init__(self, tp: tuple[str, int], rank: int) -> None:
        self.tp = tp
        self.rank = rank
        self.queue: deque[M] = deque()
        self.running: M | None = None


class LaneScheduler(Generic[M]):
    """Hands out messages that may start now: in order within a lane, at most ``concurrency`` at once.

    Invariant: a lane is in its rank's ready FIFO exactly when it has queued messages and none running.
    ``submit``, ``take_ready`` and ``finished`` are synchronous and never block; only :meth:`next_ready`
    and :meth:`idle` wait, without polling. Use it from one event loop.

    ``ranks`` maps topics to priority ranks (0 first; unlisted topics rank 0), ``min_share`` is what
    each lower rank with ready lanes is owed (see the module docstring).
    """

    def __init__(
        self,
        ordering: Ordering = "key",
        concurrency: int = 1,
        *,
        ranks: Mapping[str, int] | None = None,
        min_share: float = 0.0,
    ) -> None:
        if ordering not in get_args(Ordering):
            raise ConfigError(f"ordering must be one of {', '.join(get_args(Ordering))}, got {ordering!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if not 0 <= min_share < 0.5:
            raise ConfigError(f"min_share must be at least 0 and below 0.5, got {min_share!r}")
        self._ordering: Ordering = ordering
        self._concurrency = concurrency
        self._ranks = dict(ranks or {})
        levels = max(self._ranks.values(), default=0) + 1
        self._lanes: dict[LaneId, _Lane[M]] = {}
        # Emptied lanes kept for reuse: with per-key lanes most messages open a lane and close it again.
        self._spare: list[_Lane[M]] = []
        self._ready: list[deque[LaneId]] = [deque() for _ in range(levels)]
        self._ready_lanes = 0
        self._credit = [0.0] * levels
        self._accrual = min_share / (1 - min_share)
        self._in_flight = 0
        self._queued = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle_waiters: list[asyncio.Future[None]] = []

    @property
    def ordering(self) -> Ordering:
        """The ordering mode this scheduler was built with."""
        return self._ordering

    @property
    def concurrency(self) -> int:
        """The most items in flight at once."""
        return self._concurrency

    def lane_of(self, item: M) -> LaneId:
        """The lane an item belongs to under this scheduler's ordering."""
        if self._ordering == "key":
            return (item.topic, item.partition, item.key)
        if self._ordering == "partition":
            return (item.topic, item.partition)
        # Offsets are unique within a partition, so this is a lane per message that finished() can
        # recompute, unlike a counter.
        return (item.topic, item.partition, item.offset)

    @property
    def in_flight(self) -> int:
        """Items handed out by :meth:`next_ready` and not yet :meth:`finished`."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Items submitted and not yet handed out."""
        return self._queued

    def submit(self, item: M) -> None:
        """Queue a received item behind the earlier items of its lane. Never blocks."""
        lane_id = self.lane_of(item)
        lane = self._lanes.get(lane_id)
        if lane is None:
            tp, rank = (item.topic, item.partition), self._ranks.get(item.topic, 0)
            if self._spare:
                lane = self._spare.pop()
                lane.tp, lane.rank = tp, rank
            else:
                lane = _Lane(tp, rank)
            self._lanes[lane_id] = lane
        if lane.running is None and not lane.queue:
            self._make_ready(lane_id, lane)
        lane.queue.append(item)
        self._queued += 1
        self._wake()

    async def next_ready(self) -> M:
        """Wait until a lane's head may start and a concurrency slot is free; take it and return it.

        Several tasks may wait at once (a worker pool); each item goes to exactly one. Cancelling a
        waiting call takes nothing.
        """
        while not (self._ready_lanes and self._in_flight < self._concurrency):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # Woken, then cancelled before running: hand the wake-up on so it is not lost.
                    self._wake()
                else:
                    # Must not pile up in a caller that polls with a timeout; _wake() may already
                    # have discarded it.
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
        item = self.take_ready()
        assert item is not None
        return item

    def take_ready(self) -> M | None:
        """Without waiting: the next item that may start now (taken, as by :meth:`next_ready`), or None."""
        if not (self._ready_lanes and self._in_flight < self._concurrency):
            return None
        lane_id = self._ready[self._next_rank()].popleft()
        self._ready_lanes -= 1
        lane = self._lanes[lane_id]
        item = lane.queue.popleft()
        lane.running = item
        self._queued -= 1
        self._in_flight += 1
        return item

    def finished(self, item: M) -> None:
        """Free the item's slot and let the next item of its lane become ready.

        ``item`` must be the very object :meth:`next_ready` returned; finishing anything else raises
        ValueError, since it would corrupt the slot count and let a lane run two items at once.
        """
        lane_id = self.lane_of(item)
        lane = self._lanes.get(lane_id)
        if lane is None or lane.running is not item:
            raise ValueError(f"{item!r} is not in flight")
        lane.running = None
        self._in_flight -= 1
        if lane.queue:
            self._make_ready(lane_id, lane)
        else:
            # Forget empty lanes: with per-key lanes the key space is unbounded.
            del self._lanes[lane_id]
            if len(self._spare) < _SPARE_LANES:
                self._spare.append(lane)
        self._wake()
        self._check_idle()

    def drop_partition(self, topic: str, partition: int) -> list[M]:
        """Remove a revoked partition's queued items and return them, never started, in offset order.

        Its in-flight items stay in flight until :meth:`finished`; until then their lanes stay
        blocked, so if the partition comes back, a key's new messages still wait for the old handler.
        """
        tp = (topic, partition)
        dropped: list[M] = []
        # A scan over lanes, not a per-partition index: revocation is rare, submit is hot.
        for lane_id, lane in list(self._lanes.items()):
            if lane.tp != tp:
                continue
            dropped.extend(lane.queue)
            lane.queue.clear()
            if lane.running is None:
                del self._lanes[lane_id]
        if dropped:
            self._ready = [deque(i for i in ready if i in self._lanes) for ready in self._ready]
            self._ready_lanes = sum(len(ready) for ready in self._ready)
            self._queued -= len(dropped)
            self._check_idle()
        dropped.sort(key=lambda item: item.offset)
        return dropped

    async def idle(self) -> None:
        """Return once nothing is queued or in flight (for draining on shutdown)."""
        if self._queued == 0 and self._in_flight == 0:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._idle_waiters.remove(waiter)
            raise

    def _make_ready(self, lane_id: LaneId, lane: _Lane[M]) -> None:
        self._ready[lane.rank].append(lane_id)
        self._ready_lanes += 1

    def _next_rank(self) -> int:
        """The rank whose ready lane starts next: the highest, unless a lower one has earned a turn."""
        ready = self._ready
        if len(ready) == 1:
            return 0
        waiting = [rank for rank, lanes in enumerate(ready) if lanes]
        chosen = waiting[0]
        for rank in waiting[1:]:
            if self._credit[rank] >= 1 - 1e-9:  # a whole turn, give or take float rounding
                chosen = rank
                break
        for rank in range(len(ready)):
            if rank == chosen:
                self._credit[rank] = max(self._credit[rank] - 1, 0.0)
            elif ready[rank] and rank > waiting[0]:
                # Capped at one turn: a share is owed while waiting, never saved up as a burst.
                self._credit[rank] = min(self._credit[rank] + self._accrual, 1.0)
            else:
                self._credit[rank] = 0.0  # nothing waiting (or the top rank): owed nothing
        return chosen

    def _wake(self) -> None:
        # One waiter per call is enough: every state change enables at most one more start (submit
        # readies one lane, finished frees one slot and readies at most its own lane). A woken waiter
        # that finds the item already taken by a non-waiting caller just waits again.
        if not (self._ready_lanes and self._in_flight < self._concurrency):
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _check_idle(self) -> None:
        if self._queued or self._in_flight:
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
