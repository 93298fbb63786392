"""The agent watch: agents watching agents. Run it beside any pipeline::

    streams run agents.watch:app
    streams monitor                  # the live view of what it finds

It reads every worker's heartbeats (``streams.heartbeats``; each worker beats every
``STREAMS_HEARTBEAT_INTERVAL`` seconds, 10 by default) and keeps, per agent, its instances,
throughput, handler latency p50/p99, errors, retries, dead letters, lag and paused partitions in the
compacted topic ``streams.agent-status`` (an ``AgentStatus`` keyed by agent). Alert rules on those
figures send ``Alert`` events keyed by agent to ``streams.alerts``:

- ``agent-down`` (critical): no heartbeat from any of the agent's workers for ``down_after`` seconds;
- ``lag-growing``: a worker's lag grew on ``lag_rising_beats`` beats in a row;
- ``error-rate``: more than ``max_error_rate`` failed handler attempts per second;
- ``dlq-growing``: the agent dead-lettered messages since a worker's previous beat.
- ``breaker-open``: a workflow engine holds a capability's circuit breaker open (keyed
  ``<engine>/<capability>``).

Each alert resolves when its condition clears. With ``STREAMS_WATCH_WORKFLOWS`` naming workflow event
topics (``<app>.<workflow>.events``, comma-separated), it also counts their runs by state into
``streams.workflow-status``. Every setting is a ``STREAMS_WATCH_*`` variable
(:class:`streams.monitoring.WatchSettings`); everything runs exactly-once with its state in tables.
"""

from __future__ import annotations

from streams import App
from streams.events import AgentHeartbeat, AgentStatus, Alert, WorkflowCounts, WorkflowEvent
from streams.monitoring import AgentWatch, WatchSettings
from streams.telemetry.config import TelemetryConfig

DAY_MS = 24 * 3600 * 1000


def build(watch: WatchSettings | None = None, telemetry: TelemetryConfig | None = None) -> App:
    """The watch app as ``watch`` (default: the environment) says; tests give their own topics."""
    watch = watch or WatchSettings()
    telemetry = telemetry or TelemetryConfig()
    app = App(watch.app)
    # Declared as the workers declare it (streams.telemetry.heartbeat.heartbeat_topic).
    heartbeats = app.topic(telemetry.heartbeat_topic, value=AgentHeartbeat, partitions=3, retention_ms=DAY_MS)
    status = app.topic(watch.status_topic, value=AgentStatus, partitions=3, cleanup_policy="compact")
    alerts = app.topic(watch.alerts_topic, value=Alert, partitions=3, retention_ms=7 * DAY_MS)
    workflows = [
        app.topic(name, value=WorkflowEvent, partitions=partitions)
        for name, partitions in watch.workflow_topics()
    ]
    workflow_status = (
        app.topic(watch.workflow_status_topic, value=WorkflowCounts, partitions=3, cleanup_policy="compact")
        if workflows
        else None
    )
    AgentWatch(
        app,
        heartbeats,
        status=status,
        alerts=alerts,
        workflows=workflows,
        workflow_status=workflow_status,
        bounds=watch.bounds(),
    )
    return app


app = build()
