"""Agents watching agents: the agents that turn every worker's heartbeats into one status per agent,
and raise alerts about agents with the same rules and :class:`Monitor` users alert with.

``AgentWatch(app, heartbeats, status=..., alerts=...)`` declares, on ``app``:

- the status agent ``<name>`` on the heartbeat topic (exactly-once, from the latest beat on first
  start): folds each beat into its agent's :class:`~streams.events.AgentStatus`
  (:func:`~streams.monitoring.fleet.fold`), kept in its table ``status`` with each worker's latest
  beat in ``beats``, sends it to ``status`` (compacted, keyed by agent) and sends what the rules
  judge as :class:`~streams.events.MetricSample` s to ``<app>.<name>.samples``;
- a :class:`Monitor` named ``<name>-rules`` on those samples with the rules of
  :meth:`~streams.monitoring.agent_rules.Bounds.rules` (``agent-down``, ``lag-growing``,
  ``error-rate``, ``dlq-growing``, ``breaker-open``), sending ``OPEN`` / ``RESOLVED`` alerts keyed by
  agent (``<agent>/<capability>`` for a breaker) to ``alerts``;
- for each workflow event topic given, a counter of its runs by state (:mod:`.workflow_counts`)
  sending to ``workflow_status``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from streams.app import App
from streams.context import Context
from streams.errors import ConfigError
from streams.events import (
    AgentHeartbeat,
    AgentStatus,
    Alert,
    MetricSample,
    WorkflowCounts,
    WorkflowEvent,
)
from streams.monitoring import fleet
from streams.monitoring.agent_rules import Bounds
from streams.monitoring.monitor import Monitor
from streams.monitoring.workflow_counts import COUNTS, RUNS, WorkflowCounter, engine_of
from streams.options import ExactlyOnce
from streams.tables import Table
from streams.topics import Topic

BEATS = Table(name="beats", value=AgentHeartbeat, key=str)
STATUS = Table(name="status", value=AgentStatus, key=str)


def _beat_key(agent: str, worker_id: str) -> str:
    return f"{agent}\n{worker_id}"  # neither a group id nor a worker id holds a newline


class StatusStage:
    """The status agent's handler."""

    def __init__(self, status: Topic[AgentStatus], samples: Topic[MetricSample], bounds: Bounds) -> None:
        self._status = status
        self._samples = samples
        self._bounds = bounds

    async def __call__(self, beat: AgentHeartbeat, ctx: Context) -> None:
        statuses = ctx.table(STATUS)
        beats = ctx.table(BEATS)
        previous = statuses.get(beat.agent)
        beats.set(_beat_key(beat.agent, beat.worker_id), beat)
        workers = {beat.worker_id, *(w.worker_id for w in (previous.workers if previous else []))}
        latest = {worker: beats.get(_beat_key(beat.agent, worker)) for worker in workers}
        status = fleet.fold(
            previous,
            beat,
            {worker: None if found is None else found.latency for worker, found in latest.items()},
            down_after_ms=self._bounds.down_after_ms,
            forget_after_ms=self._bounds.forget_after_ms,
        )
        for forgotten in workers - {w.worker_id for w in status.workers}:
            beats.delete(_beat_key(beat.agent, forgotten))
        statuses.set(beat.agent, status)
        await ctx.send(self._status, status, key=beat.agent)
        for sample in fleet.samples(status):
            await ctx.send(self._samples, sample, key=beat.agent)
        for series, sample in fleet.breaker_samples(previous, status):
            await ctx.send(self._samples, sample, key=series)


class AgentWatch:
    """The status agent, the alert rules and the workflow counters (see the module docstring)."""

    def __init__(
        self,
        app: App,
        heartbeats: Topic[AgentHeartbeat],
        *,
        status: Topic[AgentStatus],
        alerts: Topic[Alert],
        workflows: Sequence[Topic[WorkflowEvent]] = (),
        workflow_status: Topic[WorkflowCounts] | None = None,
        bounds: Bounds = Bounds(),
        name: str = "agents",
    ) -> None:
        declared: list[Topic[Any]] = [heartbeats, status, alerts, *workflows]
        if workflow_status is not None:
            declared.append(workflow_status)
        for topic in declared:
            if app.topics.get(topic.name) != topic:
                raise ConfigError(f"agent watch: topic {topic.name} is not declared by app {app.name}")
        if workflows and workflow_status is None:
            raise ConfigError("agent watch: counting workflows needs a workflow_status topic")
        if status.cleanup_policy != "compact":
            raise ConfigError(f"agent watch: the status topic {status.name} must be compacted")
        self.bounds = bounds
        self.status = status
        self.samples = app.topic(
            f"{app.name}.{name}.samples",
            value=MetricSample,
            partitions=heartbeats.partitions,
            replication=heartbeats.replication,
            retention_ms=24 * 3600 * 1000,
        )
        app.agent(
            heartbeats,
            name=name,
            guarantee=ExactlyOnce(),
            start="latest",  # a first start judges the agents alive now, not a day of old beats
            tables=[BEATS, STATUS],
        )(StatusStage(status, self.samples, bounds))
        self.monitor = Monitor(app, self.samples, alerts=alerts, rules=bounds.rules(), name=f"{name}-rules")
        for index, events in enumerate(workflows):
            app.agent(
                events,
                name=f"{name}-workflows-{index}",
                guarantee=ExactlyOnce(),
                tables=[RUNS, COUNTS],
            )(WorkflowCounter(events, cast("Topic[WorkflowCounts]", workflow_status)))
        self.workflow_agents = [engine_of(events) for events in workflows]


__all__ = ["AgentWatch", "StatusStage"]
