"""Agent runtime guarantees on the real broker, with agents running in this process."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from streams import App, AtLeastOnce, Limits, Publisher, Settings
from streams.admin import TopicAdmin
from streams.context import Context
from streams.events import MetricSample, TaskRequested
from streams.serde.registry import ConfluentRegistry
from tests._records import count_up
from tests.integration._agents import eventually, running


def _task(key: str, seq: int, payload: str | None = None) -> TaskRequested:
    return TaskRequested(task_id=f"{key}-{seq}", capability="test", payload=payload or str(seq))


def _publish(settings: Settings, registry: ConfluentRegistry, topic, tasks: list[TaskRequested]) -> list[str]:  # type: ignore[no-untyped-def]
    TopicAdmin(settings, registry).apply([topic])
    with Publisher(settings, registry) as publisher:
        return [publisher.publish(topic, t, key=t.task_id.rsplit("-", 1)[0]) for t in tasks]


async def test_slow_handler_stays_bounded_and_keeps_its_group_membership(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    """Input arrives 100x faster than the handler; memory (in-flight messages) stays bounded and the
    worker is never kicked out of the group, though the run outlasts max.poll.interval.ms."""
    app = App(f"slow-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=1)
    _publish(settings, registry, tasks, [_task(f"k{i % 50}", i) for i in range(3000)])
    handled = 0

    @app.agent(
        tasks,
        concurrency=1,
        ordering="partition",
        start="earliest",
        limits=Limits(max_in_flight=100),
        consumer_config={
            "session.timeout.ms": 6000,
            "max.poll.interval.ms": 7000,
            "queued.max.messages.kbytes": 64,
        },
    )
    async def slow(task: TaskRequested, ctx: Context) -> None:
        nonlocal handled
        await asyncio.sleep(0.01)
        handled += 1

    async with running(app) as run:
        await asyncio.sleep(12)  # well past max.poll.interval.ms
    stats = run.workers[0].stats
    assert 100 < handled < 3000, "the handler is the bottleneck"
    assert stats.revocations == 1, "only the final shutdown revokes: no rebalance during the run"
    assert stats.assignments == 1
    assert stats.pauses >= 1
    assert stats.peak_in_flight <= 2 * 100, f"in-flight grew to {stats.peak_in_flight} (bound + one fetch)"


async def test_sigterm_drains_commits_and_a_restart_resumes_without_reprocessing(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App(f"resume-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=3)
    _publish(settings, registry, tasks, [_task(f"k{i % 30}", i) for i in range(600)])
    seen: list[str] = []

    # The worker holds at most ~100 of the 600: SIGTERM finishes those and leaves the rest in Kafka.
    @app.agent(tasks, concurrency=16, start="earliest", limits=Limits(max_in_flight=100))
    async def count(task: TaskRequested, ctx: Context) -> None:
        await asyncio.sleep(0.05)
        seen.append(task.task_id)

    async with running(app):
        await eventually(lambda: len(seen) >= 300, what="half the messages")
    first_run = len(seen)
    async with running(app):
        await eventually(lambda: len(seen) >= 600, what="the rest")
        await asyncio.sleep(1.0)
    assert len(seen) == len(set(seen)), "no message handled twice"
    assert len(seen) == 600
    assert first_run < 600


async def test_new_agents_start_where_told(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App(f"start-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=1)
    _publish(settings, registry, tasks, [_task("old", i) for i in range(5)])
    await asyncio.sleep(1.5)
    boundary = datetime.now(UTC) - timedelta(milliseconds=500)
    await asyncio.sleep(0.5)
    _publish(settings, registry, tasks, [_task("mid", i) for i in range(3)])
    got: dict[str, list[str]] = defaultdict(list)

    def agent_for(name: str, start: object) -> None:
        @app.agent(tasks, name=name, start=start)  # type: ignore[arg-type]
        async def handler(task: TaskRequested, ctx: Context) -> None:
            got[name].append(task.task_id)

    agent_for("from_earliest", "earliest")
    agent_for("from_latest", "latest")
    agent_for("from_time", boundary)

    @app.agent(tasks, name="by_default")
    async def by_default(task: TaskRequested, ctx: Context) -> None:
        got["by_default"].append(task.task_id)

    async with running(app):
        await eventually(
            lambda: len(got["from_earliest"]) == 8 and len(got["from_time"]) == 3, what="replays"
        )
        await eventually(lambda: len(got["by_default"]) == 8, what="the default start: earliest")
        await asyncio.sleep(3)  # let the latest agent settle on its position
        _publish(settings, registry, tasks, [_task("new", 0)])
        await eventually(lambda: got["from_latest"] == ["new-0"], what="latest agent sees only new messages")
    assert got["from_time"][:3] == ["mid-0", "mid-1", "mid-2"], "starts at the first message after the time"
    earliest = got["from_earliest"][:8]
    assert [t for t in earliest if t.startswith("old")] == [f"old-{i}" for i in range(5)]
    assert [t for t in earliest if t.startswith("mid")] == [f"mid-{i}" for i in range(3)]


async def test_dedup_skips_redelivered_and_republished_messages(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    """An idempotent consumer runs each message's side effect once, even when the group is rewound
    (every message redelivered) and when the same message is published twice."""
    app = App(f"dedup-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    _publish(settings, registry, tasks, [_task(f"k{i % 10}", i) for i in range(100)])
    with Publisher(settings, registry) as publisher:  # a producer-side duplicate: same message id
        twice = publisher.publish(tasks, _task("k0", 999), key="k0")
        publisher.publish(tasks, _task("k0", 999), key="k0", message_id=twice)  # same id, new offset
    side_effects: list[str] = []

    @app.agent(tasks, concurrency=8, guarantee=AtLeastOnce(dedup=True), start="earliest")
    async def effect(task: TaskRequested, ctx: Context) -> None:
        side_effects.append(task.task_id)

    agent = app.agents["effect"]
    async with running(app) as run:
        await eventually(lambda: len(side_effects) >= 101, what="first pass")
        await asyncio.sleep(1.0)
    assert run.workers[0].stats.duplicates == 1, "the republished copy was skipped"

    # Rewind the group to the start: every message is delivered again, none is handled again.
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.admin_config())
    rewind = ConsumerGroupTopicPartitions(
        agent.group_id, [TopicPartition(topic_name, p, 0) for p in range(2)]
    )
    admin.alter_consumer_group_offsets([rewind])[agent.group_id].result(timeout=30)
    async with running(app) as rerun:
        await eventually(lambda: rerun.workers[0].stats.duplicates >= 102, what="redelivery skipped")
        await asyncio.sleep(1.0)
    assert sorted(side_effects) == sorted({*side_effects}), "no side effect ran twice"
    assert len(side_effects) == 101
    assert rerun.workers[0].stats.duplicates == 102


async def test_a_table_is_restored_from_its_changelog_after_a_restart(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App(f"table-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    counts = app.table("counts", value=MetricSample)
    seen: list[tuple[str, int]] = []

    @app.agent(tasks, concurrency=8, tables=[counts])
    async def count(task: TaskRequested, ctx: Context) -> None:
        now = ctx.table(counts).update(str(ctx.key), count_up)
        assert now is not None
        seen.append((str(ctx.key), int(now.value)))

    _publish(settings, registry, tasks, [_task(f"k{i % 5}", i) for i in range(20)])
    async with running(app):
        await eventually(lambda: len(seen) == 20, what="the first run")
    _publish(settings, registry, tasks, [_task(f"k{i % 5}", 20 + i) for i in range(10)])
    async with running(app):  # a new worker: the table comes back from the changelog
        await eventually(lambda: len(seen) == 30, what="the second run")
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, value in seen:
        by_key[key].append(value)
    assert by_key == {f"k{k}": [1, 2, 3, 4, 5, 6] for k in range(5)}
