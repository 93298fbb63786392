"""Tables on the in-memory twin: state per key, kept only when a call succeeds, logged to a changelog
partitioned like the input."""

from pathlib import Path
from typing import Any

import pytest

from streams import App, ConfigError, Context, ExactlyOnce, Retry
from streams.events import MetricSample, TaskCompleted, TaskRequested, TaskStatus
from streams.testing import TestApp
from tests._records import count_up, sample

pytestmark = pytest.mark.unit


def _counting_app(**options: object) -> tuple[App, object, object, object]:
    app = App("tables")
    tasks = app.topic("tables.tasks", value=TaskRequested, partitions=3)
    counted = app.topic("tables.counted", value=TaskCompleted, partitions=3)
    counts = app.table("counts", value=MetricSample)

    @app.agent(tasks, tables=[counts], **options)  # type: ignore[arg-type]
    async def count(task: TaskRequested, ctx: Context) -> None:
        key = str(ctx.key)
        seen = ctx.table(counts).update(key, count_up)
        assert seen is not None
        await ctx.send(
            counted,
            TaskCompleted(
                task_id=task.task_id, agent="count", status=TaskStatus.SUCCEEDED, result=str(int(seen.value))
            ),
        )

    return app, tasks, counted, counts


def _task(key: str, seq: int) -> TaskRequested:
    return TaskRequested(task_id=f"{key}-{seq}", capability="count", payload="")


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_counts_per_key_and_a_changelog_that_mirrors_them(guarantee: str) -> None:
    options = {"guarantee": ExactlyOnce()} if guarantee == "exactly_once" else {}
    app, tasks, counted, counts = _counting_app(**options)
    async with TestApp(app) as t:
        for seq in range(5):
            for key in ("a", "b", "c", "d"):
                await t.publish(tasks, _task(key, seq), key=key, settle=False)
        await t.settle()
        state = t.table("count", counts)
        assert {k: v.value for k, v in state.items()} == {"a": 5.0, "b": 5.0, "c": 5.0, "d": 5.0}
        by_key: dict[str, list[str]] = {}
        for message in t.messages(counted):
            by_key.setdefault(str(message.key), []).append(message.value.result)
        assert by_key == {k: ["1", "2", "3", "4", "5"] for k in "abcd"}
        changelog = app.agents["count"].changelog(counts)
        records = t.messages(changelog)
        # Settled by one commit (a transaction, or offsets after the records): one record per key.
        assert len(records) == 4, "of the writes to a key before one commit, only the last is logged"
        assert {r.key: r.value.value for r in records} == {"a": 5.0, "b": 5.0, "c": 5.0, "d": 5.0}
        inputs = {m.key: m.partition for m in t.messages(tasks)}
        assert all(r.partition == inputs[r.key] for r in records), (
            "the changelog is partitioned like the input"
        )
        last = {r.key: r.value.value for r in records}
        assert last == {k: 5.0 for k in "abcd"}


async def test_a_failed_attempt_leaves_no_trace_in_the_table() -> None:
    app = App("tables")
    tasks = app.topic("tables.tasks", value=TaskRequested, partitions=1)
    counts = app.table("counts", value=MetricSample)
    attempts: list[float | None] = []

    @app.agent(tasks, tables=[counts], retry=Retry(attempts=3, backoff=1))
    async def flaky(task: TaskRequested, ctx: Context) -> None:
        view = ctx.table(counts)
        before = view.get("k")
        attempts.append(before.value if before else None)
        view.set("k", sample("n", (before.value if before else 0) + 1))
        if len(attempts) < 3:
            raise ConnectionError("fails after writing")

    async with TestApp(app) as t:
        await t.publish(tasks, _task("k", 0), key="k")
        assert attempts == [None, None, None], "each retry starts from the table as it was"
        assert t.table("flaky", counts)["k"].value == 1.0
        assert len(t.messages(app.agents["flaky"].changelog(counts))) == 1


async def test_deletes_are_tombstones_and_scan_sees_the_calls_own_writes() -> None:
    app = App("tables")
    tasks = app.topic("tables.tasks", value=TaskRequested, partitions=1)
    seen = app.table("seen", value=MetricSample)
    scans: list[list[str]] = []

    @app.agent(tasks, tables=[seen])
    async def track(task: TaskRequested, ctx: Context) -> None:
        view = ctx.table(seen)
        if task.payload == "forget":
            view.delete(task.task_id)
        else:
            view.set(task.task_id, sample("seen", 1))
        scans.append(sorted(str(key) for key, _ in view.scan()))

    async with TestApp(app) as t:
        for task_id, payload in (("x", ""), ("y", ""), ("x", "forget")):
            await t.publish(tasks, TaskRequested(task_id=task_id, capability="c", payload=payload), key="k")
        assert scans == [["x"], ["x", "y"], ["y"]]
        assert list(t.table("track", seen)) == ["y"]
        changelog = t.broker.messages(app.agents["track"].changelog(seen).name)
        assert [(m.key, m.value is None) for m in changelog] == [(b"x", False), (b"y", False), (b"x", True)]


async def test_a_table_the_agent_does_not_declare_is_a_clear_error() -> None:
    app = App("tables")
    tasks = app.topic("tables.tasks", value=TaskRequested, partitions=1)
    other = app.table("other", value=MetricSample)

    @app.agent(tasks)
    async def careless(task: TaskRequested, ctx: Context) -> None:
        ctx.table(other)

    async with TestApp(app) as t:
        await t.publish(tasks, _task("k", 0), key="k")
        [letter] = t.dead_letters("careless")
        assert "agent careless has no table other; list it in @app.agent(tables=[...])" in letter.reason
    with pytest.raises(ConfigError, match="two tables"):
        app.agent(tasks, name="twice", tables=[other, other])(careless)


README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


async def test_the_readme_tables_example_counts() -> None:
    readme = README
    code = (
        readme.split("## Tables: state that survives crashes", 1)[1]
        .split("```python\n", 1)[1]
        .split("```", 1)[0]
    )
    example: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), example)  # our own README's example, run as written
    async with TestApp(example["app"]) as t:
        for i in range(3):
            await t.publish(example["tasks"], _task("a", i), key="a")
        assert {k: v.value for k, v in t.table("count", example["counts"]).items()} == {"a": 3.0}
