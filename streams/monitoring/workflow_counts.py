"""Workflow runs by state, counted from a workflow's event topic for the agent watch.

The counter is an exactly-once agent on ``<app>.<workflow>.events`` (keyed by workflow id). It notes
each run's state in its table ``runs`` (so a repeated event counts once), keeps the counts of its
partition in its table ``counts``, and sends them, whenever they change, as a
:class:`~streams.events.WorkflowCounts` keyed ``<engine group>#<partition>`` to a compacted topic;
a reader adds the partitions up. A run whose start it never saw (one older than the topic's
retention) is counted only once it ends.
"""

from __future__ import annotations

from datetime import UTC, datetime

from streams.context import Context
from streams.events import WorkflowCounts, WorkflowEvent, WorkflowEventKind, WorkflowRun
from streams.tables import Table
from streams.topics import Topic

RUNS = Table(name="runs", value=WorkflowRun, key=str)
COUNTS = Table(name="counts", value=WorkflowCounts, key=str)
_PARTITION_COUNTS = "counts"  # one row per partition of the table

RUNNING = "RUNNING"
_STATE_AFTER = {
    WorkflowEventKind.STARTED: RUNNING,
    WorkflowEventKind.COMPLETED: "COMPLETED",
    WorkflowEventKind.FAILED: "FAILED",
    WorkflowEventKind.CANCELLED: "CANCELLED",
}
_FIELD = {RUNNING: "running", "COMPLETED": "completed", "FAILED": "failed", "CANCELLED": "cancelled"}


def engine_of(events: Topic[WorkflowEvent]) -> str:
    """The engine's consumer group (what its heartbeats call it) for the event topic of a workflow."""
    return events.name.removesuffix(".events")


def counts_key(agent: str, partition: int) -> str:
    return f"{agent}#{partition}"


def counted(counts: WorkflowCounts, before: str | None, after: str, at: datetime) -> WorkflowCounts:
    """``counts`` with one run moved from state ``before`` (None: not counted yet) to ``after``."""
    change = {_FIELD[after]: getattr(counts, _FIELD[after]) + 1, "updated_at": at}
    if before is not None:
        change[_FIELD[before]] = max(0, getattr(counts, _FIELD[before]) - 1)
    return counts.model_copy(update=change)


class WorkflowCounter:
    """The counter agent's handler for one workflow's events."""

    def __init__(self, events: Topic[WorkflowEvent], out: Topic[WorkflowCounts]) -> None:
        self._agent = engine_of(events)
        self._out = out
        self.__name__ = f"count-{self._agent}"

    async def __call__(self, event: WorkflowEvent, ctx: Context) -> None:
        after = _STATE_AFTER.get(event.kind)
        if after is None:
            return  # a step, a timer or a signal: the run's state is unchanged
        runs = ctx.table(RUNS)
        run = runs.get(event.workflow_id)
        before = None if run is None else run.status
        if before == after or (before is not None and before != RUNNING):
            return  # a repeat, or news of a run that has ended
        runs.set(event.workflow_id, WorkflowRun(status=after))
        table = ctx.table(COUNTS)
        at = datetime.fromtimestamp(ctx.timestamp_ms / 1000, UTC)
        counts = table.get(_PARTITION_COUNTS) or WorkflowCounts(
            agent=self._agent, partition=ctx.partition, updated_at=at
        )
        counts = counted(counts, before, after, at)
        table.set(_PARTITION_COUNTS, counts)
        await ctx.send(self._out, counts, key=counts_key(self._agent, ctx.partition))


__all__ = ["COUNTS", "RUNS", "WorkflowCounter", "counted", "counts_key", "engine_of"]
