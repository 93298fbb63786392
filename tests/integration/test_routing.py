"""Least-load routing on the real broker: of two pools of one capability, the one 5x faster gets
most of the calls, from what the workers' heartbeats say."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from streams import App, Client, Context, Settings
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from streams.telemetry.config import TelemetryConfig
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
