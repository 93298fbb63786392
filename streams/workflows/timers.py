"""Durable timers: deadlines of a partition's waiting steps, and the events that fire them.

A deadline lives in the journal (``wf.sleep``, a call's or a signal's ``timeout``), so it survives
anything. This index of them is derived: kept in the journal table's per-partition cache, filled from
the journals once after each assignment, and told of each new deadline by the engine. An entry stays
until the event that fires it is on the broker; firing twice is harmless, as the journal ignores a
timer for a step that is not waiting any more.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime

from streams.context import Tick
from streams.events import StepStatus, WorkflowEvent, WorkflowEventKind, WorkflowJournal, WorkflowStatus
from streams.tables import Table
from streams.timestamps import epoch_millis
from streams.topics import Topic

_CACHE_KEY = "timers"
_WAITING = (StepStatus.PENDING, StepStatus.RETRYING)
ACTIVE = (WorkflowStatus.RUNNING, WorkflowStatus.COMPENSATING)
"""The statuses in which a workflow still has steps to wait for."""


class Deadlines:
    def __init__(self) -> None:
        self.built = False
        self._heap: list[tuple[int, str, int, str]] = []  # (due ms, workflow id, step, step name)

    def add(self, journal: WorkflowJournal, before: WorkflowJournal | None = None) -> None:
        """The deadlines of ``journal``'s waiting steps (a backoff is one too), those only that are
        new since ``before``: a step asked for anew, or given a new deadline (a retry)."""
        if journal.status not in ACTIVE:
            return
        old = before.steps if before is not None else []
        for index, step in enumerate(journal.steps):
            if step.status not in _WAITING or step.deadline is None:
                continue
            if index < len(old) and old[index].deadline == step.deadline:
                continue
            heapq.heappush(self._heap, (epoch_millis(step.deadline), journal.workflow_id, index, step.name))

    def build(self, journals: Iterable[WorkflowJournal]) -> None:
        for journal in journals:
            self.add(journal)
        self.built = True

    def next_due(self, now_ms: int) -> tuple[int, str, int, str] | None:
        return self._heap[0] if self._heap and self._heap[0][0] <= now_ms else None

    def pop(self) -> None:
        heapq.heappop(self._heap)


def deadlines_of(cache: dict[str, object]) -> Deadlines:
    found = cache.get(_CACHE_KEY)
    if not isinstance(found, Deadlines):
        found = cache[_CACHE_KEY] = Deadlines()
    return found


class TimerTicker:
    """The engine's ticker: fires the deadlines that have come, as ``TIMER_FIRED`` events."""

    interval = 0.2

    def __init__(self, journal: Table[WorkflowJournal], events: Topic[WorkflowEvent], sender: str) -> None:
        self._journal = journal
        self._events = events
        self._sender = sender

    async def tick(self, tick: Tick) -> None:
        now_ms = tick.now_ms
        # Every owned partition, caught up or not: a timer that fires during a backlog is an event
        # behind it, and one already answered by the backlog is ignored by the engine.
        for partition in tick.partitions:
            view = tick.open_table(self._journal, partition)
            deadlines = deadlines_of(view.cache())
            if not deadlines.built:
                deadlines.build(journal for _, journal in view.scan())
            while (due := deadlines.next_due(now_ms)) is not None:
                _, workflow_id, step, name = due
                fired = WorkflowEvent(
                    kind=WorkflowEventKind.TIMER_FIRED,
                    workflow_id=workflow_id,
                    name=name,
                    step=step,
                    sender=self._sender,
                    at=datetime.fromtimestamp(now_ms / 1000, UTC),
                )
                await tick.send(self._events, fired, workflow_id)
                deadlines.pop()
