"""Least-load routing on the real broker: of two pools of one capability, the one 5x faster gets
most of the calls, from what the workers' heartbeats say."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from streams import App, Client, Context, Settings, Workflow
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from streams.state_query import read_table
from streams.telemetry.config import TelemetryConfig
from streams.workflows.engine import JOURNAL
from tests.integration._agents import eventually, running

pytestmark = pytest.mark.integration

SECONDS = {"fast": 0.02, "slow": 0.1}  # per request: the slow pool is 5x slower
CALLS = 240
OUTSTANDING = 8


async def test_the_pool_five_times_faster_gets_most_calls(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = App(f"route-{uuid.uuid4().hex[:8]}", settings)
    for pool, seconds in SECONDS.items():

        @app.specialist("work", input=TaskRequested, output=TaskCompleted, pool=pool)
        async def work(
            task: TaskRequested, ctx: Context, pool: str = pool, seconds: float = seconds
        ) -> TaskCompleted:
            await asyncio.sleep(seconds)
            return TaskCompleted(task_id=task.task_id, agent=pool, status=TaskStatus.SUCCEEDED)

    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    beats = TelemetryConfig(heartbeat_interval=0.3, lag_interval=0.3)
    served: Counter[str] = Counter()
    async with running(app, telemetry=beats), Client(app, registry=registry) as client:
        source = app.routing.source
        assert source is not None, "the client follows the heartbeats"

        def beating() -> bool:
            loads = [source.load(pool.group_id) for pool in app.specialists["work"].pools.values()]
            return all(load is not None and load.live for load in loads)

        await eventually(beating, within=60, what="both pools to beat")
        slots = asyncio.Semaphore(OUTSTANDING)

        async def call(i: int) -> None:
            async with slots:
                done = await client.call(
                    "work", TaskRequested(task_id=str(i), capability="work", payload=""), timeout=60
                )
                served[done.agent] += 1

        await asyncio.wait_for(asyncio.gather(*(call(i) for i in range(CALLS))), 60)
    print(f"served: {dict(served)}")
    assert sum(served.values()) == CALLS
    assert served["fast"] >= 2 * served["slow"], f"the fast pool got {served['fast']} of {CALLS}"


async def test_a_pool_that_stops_beating_leaves_the_rotation_and_workflows_journal_their_pool(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = App(f"rotate-{uuid.uuid4().hex[:8]}", settings)
    for pool in ("a", "b"):

        @app.specialist("work", input=TaskRequested, output=TaskCompleted, pool=pool)
        async def work(task: TaskRequested, ctx: Context, pool: str = pool) -> TaskCompleted:
            return TaskCompleted(task_id=task.task_id, agent=pool, status=TaskStatus.SUCCEEDED)

    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=2)
    async def ask(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        done: TaskCompleted = await wf.call("work", case, timeout=30)
        return done

    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    beats = TelemetryConfig(heartbeat_interval=0.3, lag_interval=0.3)
    pools = app.specialists["work"].pools

    def live(pool: str) -> bool:
        source = app.routing.source  # fed by the engine's runner
        load = None if source is None else source.load(pools[pool].group_id)
        return load is not None and load.live

    async with running(app, ["ask", "work.a"], telemetry=beats):
        async with running(app, ["work.b"], telemetry=beats):
            await eventually(lambda: live("a") and live("b"), within=60, what="both pools to beat")
        await eventually(lambda: not live("b"), within=10, what="pool b to leave the rotation")
        async with Client(app, registry=registry) as client:
            ids = [
                await client.start("ask", TaskRequested(task_id=f"t{i}", capability="work", payload=""))
                for i in range(6)
            ]
            answers = [await asyncio.wait_for(client.result("ask", workflow_id), 60) for workflow_id in ids]
    assert [answer.agent for answer in answers] == ["a"] * 6, "nothing went to the pool that stopped"
    journals = read_table(settings, registry, app.agents["ask"], JOURNAL, timeout=30)
    steps = [row.value.steps[0] for row in journals.rows() if row.key in ids]
    assert [step.pool for step in steps] == ["a"] * 6
