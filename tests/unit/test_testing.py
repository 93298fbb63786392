"""The in-memory twin itself: the README's example, the fake clock, exactly-once visibility, speed."""

import time
from pathlib import Path
from typing import Any

import pytest

from agents import triage
from streams import App, Context, ExactlyOnce, Retry
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.testing import TestApp
from streams.worker.handling import HandlerFailed

pytestmark = pytest.mark.unit


README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


async def test_the_readme_example_runs_as_written() -> None:
    readme = README
    section = readme.split("## Testing agents without Kafka", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # our own README's example, run as written
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1
    await tests[0]()


async def test_triage_answers_and_commits() -> None:
    async with TestApp(triage.app) as t:
        await t.publish(
            triage.tasks, TaskRequested(task_id="t1", capability="research", payload="q"), key="t1"
        )
        [result] = t.sent(triage.results)
        assert result.task_id == "t1"
        assert result.status == TaskStatus.SUCCEEDED
        assert t.committed("research") == {t.messages(triage.tasks)[0].partition: 1}


async def test_retries_wait_on_the_fake_clock_not_the_real_one() -> None:
    app = App("twin")
    tasks = app.topic("twin.tasks", value=TaskRequested, partitions=1)
    tries: list[int] = []

    @app.agent(tasks, retry=Retry(attempts=3, backoff=60, max_backoff=600, jitter=0))
    async def flaky(task: TaskRequested, ctx: Context) -> None:
        tries.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("model unavailable")

    # 3 minutes of backoff: on the real clock this would run into the test timeout.
    async with TestApp(app) as t:
        await t.publish(tasks, TaskRequested(task_id="a", capability="c", payload="p"), key="a")
        assert tries == [1, 2, 3]
        assert t.clock.sleeps == [60.0, 120.0]
        assert t.dead_letters("flaky") == []
        assert t.stats("flaky").retries == 2


async def test_exactly_once_outputs_appear_with_the_commit() -> None:
    app = App("twin")
    tasks = app.topic("twin.tasks", value=TaskRequested, partitions=2)
    done = app.topic("twin.done", value=TaskCompleted, partitions=2)

    @app.agent(tasks, guarantee=ExactlyOnce())
    async def finish(task: TaskRequested, ctx: Context) -> None:
        await ctx.send(done, TaskCompleted(task_id=task.task_id, agent="finish", status=TaskStatus.SUCCEEDED))

    async with TestApp(app) as t:
        await t.publish(tasks, TaskRequested(task_id="x", capability="c", payload="p"), key="x", settle=False)
        assert t.sent(done) == []  # handled or not, nothing is visible before the transaction
        await t.settle()
        assert [r.task_id for r in t.sent(done)] == ["x"]


async def test_a_handler_failing_for_good_without_a_dead_letter_topic_fails_the_test() -> None:
    app = App("twin")
    tasks = app.topic("twin.tasks", value=TaskRequested, partitions=1)

    @app.agent(tasks, dead_letter=False)
    async def broken(task: TaskRequested, ctx: Context) -> None:
        raise ValueError("bad input")

    async with TestApp(app) as t:
        with pytest.raises(HandlerFailed, match="bad input"):
            await t.publish(tasks, TaskRequested(task_id="x", capability="c", payload="p"), key="x")
        assert t.committed("broken") == {}


async def test_a_thousand_messages_through_two_agents() -> None:
    app = App("twin")
    tasks = app.topic("twin.tasks", value=TaskRequested, partitions=6)
    middle = app.topic("twin.middle", value=TaskRequested, partitions=6)
    done = app.topic("twin.done", value=TaskCompleted, partitions=6)

    @app.agent(tasks, concurrency=32)
    async def relay(task: TaskRequested, ctx: Context) -> None:
        await ctx.send(middle, task)

    @app.agent(middle, concurrency=32)
    async def finish(task: TaskRequested, ctx: Context) -> None:
        await ctx.send(done, TaskCompleted(task_id=task.task_id, agent="finish", status=TaskStatus.SUCCEEDED))

    async with TestApp(app) as t:
        started = time.monotonic()
        for i in range(1000):
            await t.publish(
                tasks,
                TaskRequested(task_id=str(i), capability="c", payload="p"),
                key=f"k{i % 50}",
                settle=False,
            )
        await t.settle()
        elapsed = time.monotonic() - started
    assert sorted(int(r.task_id) for r in t.sent(done)) == list(range(1000))
    print(f"1,000 messages through 2 agents on the twin: {elapsed * 1000:.0f} ms")
