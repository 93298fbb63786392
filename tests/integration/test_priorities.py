"""Priority lanes on the real broker: a critical call overtakes a queued flood of low-priority work."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from streams import App, Client, Context, Limits, Publisher, Settings
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from tests.integration._agents import eventually, running

pytestmark = pytest.mark.integration

FLOOD = 2000
LOW_SECONDS = 0.05  # per low request: the flood is 2000 x 50 ms / 2 slots = 50 s of work
BOUND = 2.0  # the README's bound for a critical call behind that flood


async def test_a_critical_request_is_served_within_the_bound_behind_a_flood_of_low_ones(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = App(f"prio-{uuid.uuid4().hex[:8]}", settings)
    handled: list[str] = []

    @app.specialist(
        "work",
        input=TaskRequested,
        output=TaskCompleted,
        concurrency=2,
        limits=Limits(max_in_flight=100, drain_timeout=1),
    )
    async def work(task: TaskRequested, ctx: Context) -> TaskCompleted:
        handled.append(task.task_id)
        if task.payload == "slow":
            await asyncio.sleep(LOW_SECONDS)
        return TaskCompleted(task_id=task.task_id, agent="work", status=TaskStatus.SUCCEEDED)

    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    low = app.specialists["work"].requests_for("low")
    with Publisher(settings, registry) as publisher:  # queued before any worker runs
        for i in range(FLOOD):
            publisher.publish(
                low, TaskRequested(task_id=f"low-{i}", capability="work", payload="slow"), key=str(i)
            )
    async with running(app), Client(app, registry=registry) as client:
        await eventually(lambda: len(handled) >= 20, within=60, what="the worker to work on the flood")
        started = time.monotonic()
        answer = await client.call(
            "work",
            TaskRequested(task_id="critical", capability="work", payload=""),
            priority="critical",
            timeout=30,
        )
        took = time.monotonic() - started
        before = handled.index("critical")
        print(f"critical served in {took:.3f}s after {before} low requests")
    assert answer.task_id == "critical"
    assert took < BOUND, f"the critical call took {took:.2f}s"
    assert before < FLOOD // 4, f"{before} low requests went first: the critical one waited in line"
