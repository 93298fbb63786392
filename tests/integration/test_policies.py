"""Workflow policies on the real broker: deadlines, circuit breakers with fallbacks, and sagas."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from streams import (
    App,
    CallTimeout,
    Client,
    Context,
    DataError,
    ExactlyOnce,
    Publisher,
    Settings,
    Workflow,
    WorkflowFailed,
)
from streams import headers as hdr
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail
from tests.integration._agents import running

pytestmark = pytest.mark.integration


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="policies", payload=payload)


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="policies", status=TaskStatus.SUCCEEDED, result=result)


async def test_requests_past_their_deadline_never_reach_a_handler(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = App(f"deadline-{uuid.uuid4().hex[:8]}", settings)
    handled: list[str] = []

    @app.specialist("work", input=TaskRequested, output=TaskCompleted)
    async def work(task: TaskRequested, ctx: Context) -> TaskCompleted:
        handled.append(task.task_id)
        await asyncio.sleep(float(task.payload or 0))
        return _done(task.task_id, "done")

    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    requests = app.specialists["work"].requests
    async with running(app), Client(app, registry=registry) as client:
        with Publisher(settings, registry) as publisher:  # expired before they were even sent
            for i in range(5):
                past = hdr.deadline_header(int(time.time() * 1000) - 1000)
                publisher.publish(requests, _task(f"expired-{i}"), key="k", extra_headers=[past])
        # A call queued behind a slow one on the same key: its 0.5 s pass while it waits.
        slow = asyncio.create_task(client.call("work", _task("slow", "2"), key="same", timeout=30))
        await asyncio.sleep(0.5)
        with pytest.raises(CallTimeout):
            await client.call("work", _task("queued", "0"), key="same", timeout=0.5)
        assert (await slow).result == "done"
        assert (await client.call("work", _task("fresh", "0"), key="same", timeout=30)).result == "done"
    assert sorted(handled) == ["fresh", "slow"], "no expired request reached the handler"
    letters = list(
        tail(settings, registry, f"{app.name}.work.dlq", from_beginning=True, limit=6, idle_timeout=10)
    )
    assert sorted(m.value["task_id"] for m in letters if m.value) == [
        *(f"expired-{i}" for i in range(5)),
        "queued",
    ]
    assert all(m.headers[hdr.DLQ_REASON].startswith("deadline passed") for m in letters)


async def test_a_saga_whose_third_step_fails_runs_exactly_two_compensations_in_reverse(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = App(f"saga-{uuid.uuid4().hex[:8]}", settings)
    undone: list[tuple[str, str]] = []

    @app.specialist("book", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def book(task: TaskRequested, ctx: Context) -> TaskCompleted:
        if task.payload == "car":
            raise DataError("no cars left")
        return _done(task.task_id, task.payload)

    @app.specialist("undo", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def undo(task: TaskRequested, ctx: Context) -> TaskCompleted:
        undone.append((task.task_id, task.payload))
        return _done(task.task_id, f"undid {task.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def trip(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        for thing in ("flight", "hotel", "car"):
            await wf.call("book", _task(case.task_id, thing))
            wf.compensate("undo", _task(case.task_id, thing))
        return _done(case.task_id, "booked")

    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    async with running(app), Client(app, registry=registry) as client:
        ids = [await client.start("trip", _task(f"case-{i}")) for i in range(5)]
        for workflow_id in ids:
            with pytest.raises(WorkflowFailed, match="no cars left"):
                await client.result("trip", workflow_id, timeout=120)
    for i in range(5):
        assert [thing for case, thing in undone if case == f"case-{i}"] == ["hotel", "flight"]
    assert len(undone) == 10
