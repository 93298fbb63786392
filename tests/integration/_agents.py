"""Run agents in-process against the real broker for a test, and stop them cleanly afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from streams import App
from streams.runner import AgentRunner
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


async def eventually(predicate: Callable[[], Any], within: float = 60.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is truthy; fail the test with ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
