"""Run agents in-process against the real broker for a test, and stop them cleanly afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from streams import App, Settings
from streams.admin import TopicAdmin
from streams.runner import AgentRunner
from streams.serde.registry import ConfluentRegistry
from streams.telemetry.config import TelemetryConfig


@asynccontextmanager
async def running(
    app: App, names: Sequence[str] | None = None, telemetry: TelemetryConfig | None = None
) -> AsyncIterator[AgentRunner]:
    """Agents of ``app`` running for the body of the ``async with``; then drained and stopped."""
    stop = asyncio.Event()
    runner = AgentRunner(app, names, telemetry=telemetry)
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, 90)


@asynccontextmanager
async def serving(app: App, telemetry: TelemetryConfig | None = None) -> AsyncIterator[AgentRunner]:
    """As :func:`running`, entered once every agent owns its partitions: a workflow's timeouts start
    with its first step, and must not be spent waiting for a specialist to join its group."""
    async with running(app, telemetry=telemetry) as runner:
        await eventually(
            lambda: all(w.assigned_partitions() for w in runner.workers), what="every agent assigned"
        )
        yield runner


def unique(prefix: str) -> str:
    """A name no other test run uses (apps, and so topics and groups, share the test cluster)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def on_cluster(app: App, settings: Settings, registry: ConfluentRegistry) -> App:
    """``app`` pointed at the test's cluster, its topics created, so a test can publish at once."""
    app.settings = settings
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    return app


async def eventually(predicate: Callable[[], Any], within: float = 60.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is truthy; fail the test with ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
