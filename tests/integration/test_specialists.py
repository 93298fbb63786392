"""Specialists on the real broker: called from code, typed answers, failures and timeouts."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from streams import App, CallFailed, CallTimeout, Client, Context, ExactlyOnce, Settings
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from tests.integration._agents import running

pytestmark = pytest.mark.integration


def _app(settings: Settings) -> App:
    app = App(f"spec-{uuid.uuid4().hex[:8]}", settings)

    @app.specialist(
        "research", input=TaskRequested, output=TaskCompleted, concurrency=8, guarantee=ExactlyOnce()
    )
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        if task.payload == "fail":
            raise ValueError("cannot research that")
        await asyncio.sleep(0.01)
        return TaskCompleted(
            task_id=task.task_id, agent="research", status=TaskStatus.SUCCEEDED, result=task.payload[::-1]
        )

    @app.specialist("idle", input=TaskRequested, output=TaskCompleted)
    async def idle(task: TaskRequested, ctx: Context) -> TaskCompleted:
        raise AssertionError("never started in this test")

    return app


async def test_concurrent_calls_each_get_their_own_typed_answer(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = _app(settings)
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    async with running(app, ["research"]), Client(app, registry=registry) as client:
        tasks = [TaskRequested(task_id=f"t{i}", capability="research", payload=f"q{i}") for i in range(40)]
        answers = await asyncio.gather(
            *(client.call("research", t, key=t.task_id, timeout=60) for t in tasks)
        )
        assert [a.result for a in answers] == [f"q{i}"[::-1] for i in range(40)]
        with pytest.raises(
            CallFailed, match="research failed after 1 attempt\\(s\\): ValueError: cannot research"
        ):
            await client.call("research", TaskRequested(task_id="bad", capability="research", payload="fail"))


async def test_a_call_nobody_answers_times_out_with_a_hint(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = _app(settings)
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    async with Client(app, registry=registry) as client:
        with pytest.raises(
            CallTimeout, match=r"no answer from idle within 1s .*is a worker of spec-\w+ running it\?"
        ):
            await client.call("idle", TaskRequested(task_id="t", capability="idle", payload=""), timeout=1)


async def test_two_callers_never_see_each_others_answers(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = _app(settings)
    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    async with (
        running(app, ["research"]),
        Client(app, registry=registry) as one,
        Client(app, registry=registry) as two,
    ):
        first, second = await asyncio.gather(
            one.call(
                "research", TaskRequested(task_id="a", capability="research", payload="abc"), timeout=60
            ),
            two.call(
                "research", TaskRequested(task_id="b", capability="research", payload="xyz"), timeout=60
            ),
        )
        assert (first.result, second.result) == ("cba", "zyx")
