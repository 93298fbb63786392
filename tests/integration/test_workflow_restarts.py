"""Workflows across an engine restart on the real broker: a sleep fires once, a signal still lands."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from streams import App, Client, Settings, Workflow
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested, TaskStatus, WorkflowEventKind
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail
from tests.integration._agents import running

pytestmark = pytest.mark.integration


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="wf", status=TaskStatus.SUCCEEDED, result=result)


def _app(settings: Settings) -> App:
    app = App(f"restarts-{uuid.uuid4().hex[:8]}", settings)

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def sleepy(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        started = wf.now()
        await wf.sleep(5)
        return _done(case.task_id, f"{(wf.now() - started).total_seconds():.1f}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def approval(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        decision = await wf.signal("approval", TaskCompleted)
        return _done(case.task_id, f"approved: {decision.result}")

    return app


async def test_a_sleep_and_a_signal_wait_survive_an_engine_restart(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = _app(settings)
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    async with Client(app, registry=registry) as client:
        async with running(app):
            started = time.monotonic()
            napping = await client.start(
                "sleepy", TaskRequested(task_id="n1", capability="sleepy", payload="")
            )
            waiting = await client.start(
                "approval", TaskRequested(task_id="a1", capability="approval", payload="")
            )
            await asyncio.sleep(2)  # both are waiting now; the engine stops in the middle of the sleep
        async with running(app):
            await client.signal("approval", waiting, "approval", _done("a1", "yes"))
            slept = await client.result("sleepy", napping, timeout=60)
            approved = await client.result("approval", waiting, timeout=60)
        elapsed = time.monotonic() - started
    assert float(slept.result or 0) >= 5.0, "the sleep lasted its 5 s of workflow time"
    assert elapsed < 30
    assert approved.result == "approved: yes"
    events = list(
        tail(settings, registry, app.workflows["sleepy"].events.name, from_beginning=True, idle_timeout=3)
    )
    kinds = [m.value["kind"] for m in events if m.key == napping]
    assert kinds.count(WorkflowEventKind.COMPLETED.value) == 1, kinds
