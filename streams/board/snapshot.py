"""The monitor's picture of a cluster: what the agent watch's topics say, judged at one moment.

:class:`Board` takes the records as they are read (the latest :class:`~streams.events.AgentStatus`
per agent, :class:`~streams.events.WorkflowCounts` per workflow partition, every
:class:`~streams.events.Alert`) and :meth:`Board.snapshot` turns them into rows at ``now``: an agent's
live workers are re-judged against the wall clock with the bound its status carries, so an agent
whose heartbeats stopped shows as down even before (or without) an alert saying so. Pure: no Kafka,
no clock of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from streams.events import AgentStatus, Alert, AlertStatus, Severity, WorkerState, WorkflowCounts
from streams.monitoring.agent_rules import AGENT_DOWN
from streams.monitoring.fleet import is_live
from streams.timestamps import epoch_millis

Health = Literal["down", "alert", "starting", "ok", "stopped"]
SortBy = Literal["health", "name", "throughput", "lag", "errors"]
SORTS: tuple[SortBy, ...] = ("health", "name", "throughput", "lag", "errors")

# Worst first: what needs a person comes to the top of the screen.
_HEALTH_ORDER: dict[str, int] = {"down": 0, "alert": 1, "starting": 2, "ok": 3, "stopped": 4}
_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True)
class OpenAlert:
    alert_id: str
    rule: str
    severity: str
    agent: str | None
    message: str
    since: datetime


@dataclass(frozen=True)
class Workflows:
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class AgentRow:
    """One agent as the screen and ``--json`` show it."""

    agent: str
    health: Health
    instances: int
    workers: int
    throughput: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    lag: int
    error_rate: float
    errors_total: int
    retries_total: int
    dead_letters_total: int
    paused_partitions: int
    in_flight: int
    last_seen: datetime | None
    silent_s: float | None
    workflows: Workflows | None
    alerts: list[OpenAlert] = field(default_factory=list)
    open_breakers: list[str] = field(default_factory=list)  # an engine's, as its live workers beat


@dataclass(frozen=True)
class Summary:
    agents: int
    health: dict[str, int]
    instances: int
    throughput: float
    lag: int
    open_alerts: int
    critical_alerts: int


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    rows: list[AgentRow]
    alerts: list[OpenAlert]
    summary: Summary
    undecodable: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (times as ISO 8601 strings); the rows are called ``agents``."""
        plain: dict[str, Any] = _jsonable(asdict(self))
        return {
            "at": plain["at"],
            "summary": plain["summary"],
            "agents": plain["rows"],
            "alerts": plain["alerts"],
            "undecodable": plain["undecodable"],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


class Board:
    """The latest of everything read so far; feed it records in the order they were read."""

    def __init__(self) -> None:
        self.statuses: dict[str, AgentStatus] = {}
        self.workflows: dict[str, WorkflowCounts] = {}
        self.alerts: dict[str, tuple[str | None, Alert]] = {}  # alert_id -> (Kafka key, latest event)
        self.undecodable = 0

    def status(self, key: str | None, status: AgentStatus | None) -> None:
        agent = key if status is None else status.agent
        if agent is None:
            return
        if status is None:
            self.statuses.pop(agent, None)  # a tombstone: the agent was removed
        else:
            self.statuses[agent] = status

    def workflow_counts(self, key: str | None, counts: WorkflowCounts | None) -> None:
        if counts is not None:
            self.workflows[f"{counts.agent}#{counts.partition}"] = counts
        elif key is not None:
            self.workflows.pop(key, None)

    def alert(self, key: str | None, alert: Alert) -> None:
        self.alerts[alert.alert_id] = (key, alert)

    def open_alerts(self) -> list[OpenAlert]:
        found = [
            OpenAlert(
                alert_id=alert.alert_id,
                rule=alert.rule,
                severity=alert.severity.value,
                agent=alert.labels.get("agent", key),
                message=alert.message,
                since=alert.fired_at,
            )
            for key, alert in self.alerts.values()
            if alert.status is AlertStatus.OPEN
        ]
        found.sort(key=lambda a: (_SEVERITY_ORDER.get(Severity(a.severity), 9), -epoch_millis(a.since)))
        return found

    def snapshot(self, now: datetime, sort: SortBy = "health") -> Snapshot:
        alerts = self.open_alerts()
        by_agent: dict[str, list[OpenAlert]] = {}
        for alert in alerts:
            if alert.agent is not None:
                by_agent.setdefault(alert.agent, []).append(alert)
        counts = _workflow_counts(self.workflows.values())
        names = set(self.statuses) | set(counts)
        rows = [
            _row(name, self.statuses.get(name), counts.get(name), by_agent.get(name, []), now)
            for name in names
        ]
        rows.sort(key=_SORT_KEYS[sort])
        return Snapshot(
            at=now, rows=rows, alerts=alerts, summary=_summary(rows, alerts), undecodable=self.undecodable
        )


def _workflow_counts(parts: Iterable[WorkflowCounts]) -> dict[str, Workflows]:
    totals: dict[str, Workflows] = {}
    for part in parts:
        had = totals.get(part.agent, Workflows())
        totals[part.agent] = Workflows(
            running=had.running + part.running,
            completed=had.completed + part.completed,
            failed=had.failed + part.failed,
            cancelled=had.cancelled + part.cancelled,
        )
    return totals


def _row(
    agent: str,
    status: AgentStatus | None,
    workflows: Workflows | None,
    alerts: list[OpenAlert],
    now: datetime,
) -> AgentRow:
    if status is None:  # workflow counts for an engine the watch has heard no beat from
        return AgentRow(
            agent, "down" if alerts else "stopped", 0, 0, 0.0, None, None, 0, 0.0, 0, 0, 0, 0, 0,
            None, None, workflows, alerts,
        )  # fmt: skip
    live = [w for w in status.workers if is_live(w, now, status.down_after_ms)]
    stopped = bool(status.workers) and all(w.state == WorkerState.STOPPED.value for w in status.workers)
    health: Health
    if stopped:
        health = "stopped"
    elif not live or any(a.rule == AGENT_DOWN for a in alerts):
        health = "down"
    elif alerts:
        health = "alert"
    elif all(w.state == WorkerState.STARTING.value for w in live):
        health = "starting"
    else:
        health = "ok"
    return AgentRow(
        agent=agent,
        health=health,
        instances=len(live),
        workers=len(status.workers),
        throughput=sum(w.throughput for w in live),
        latency_p50_ms=status.latency_p50_ms if live else None,
        latency_p99_ms=status.latency_p99_ms if live else None,
        lag=sum(w.lag for w in live) if live else status.lag,
        error_rate=sum(w.error_rate for w in live),
        errors_total=status.errors_total,
        retries_total=status.retries_total,
        dead_letters_total=status.dead_letters_total,
        paused_partitions=sum(w.paused_partitions for w in live),
        in_flight=sum(w.in_flight for w in live),
        last_seen=status.last_seen,
        silent_s=max(0.0, (epoch_millis(now) - epoch_millis(status.last_seen)) / 1000),
        workflows=workflows,
        alerts=alerts,
        open_breakers=sorted({capability for w in live for capability in w.open_breakers}),
    )


def _summary(rows: list[AgentRow], alerts: list[OpenAlert]) -> Summary:
    health: dict[str, int] = {}
    for row in rows:
        health[row.health] = health.get(row.health, 0) + 1
    return Summary(
        agents=len(rows),
        health=dict(sorted(health.items(), key=lambda item: _HEALTH_ORDER[item[0]])),
        instances=sum(r.instances for r in rows),
        throughput=sum(r.throughput for r in rows),
        lag=sum(r.lag for r in rows),
        open_alerts=len(alerts),
        critical_alerts=sum(1 for a in alerts if a.severity == Severity.CRITICAL.value),
    )


_SORT_KEYS: dict[str, Any] = {
    # Within a health, by name: a live screen whose rows trade places every second cannot be read.
    "health": lambda r: (_HEALTH_ORDER[r.health], r.agent),
    "name": lambda r: r.agent,
    "throughput": lambda r: (-r.throughput, r.agent),
    "lag": lambda r: (-r.lag, r.agent),
    "errors": lambda r: (-r.error_rate, -r.dead_letters_total, -r.errors_total, r.agent),
}


__all__ = ["SORTS", "AgentRow", "Board", "OpenAlert", "Snapshot", "SortBy", "Summary", "Workflows"]
