"""Agent runtime guarantees on the real broker, with agents running in this process."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from streams import App, AtLeastOnce, Limits, Publisher, Retry, Settings
from streams import headers as hdr
from streams.admin import TopicAdmin
from streams.context import Context
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.headers import CAUSATION_ID, CORRELATION_ID
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail
from tests.integration._agents import eventually, running
from tests.integration._kafka import message_count, produce_raw


def _task(key: str, seq: int, payload: str | None = None) -> TaskRequested:
    return TaskRequested(task_id=f"{key}-{seq}", capability="test", payload=payload or str(seq))


def _publish(settings: Settings, registry: ConfluentRegistry, topic, tasks: list[TaskRequested]) -> list[str]:  # type: ignore[no-untyped-def]
    TopicAdmin(settings, registry).apply([topic])
    with Publisher(settings, registry) as publisher:
        return [publisher.publish(topic, t, key=t.task_id.rsplit("-", 1)[0]) for t in tasks]


async def test_key_order_holds_with_64_handlers_on_one_partition(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App(f"order-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=1)
    keys = [f"k{i}" for i in range(200)]
    per_key = 15
    # Round-robin over keys so every key's messages are spread through the partition.
    _publish(settings, registry, tasks, [_task(k, s) for s in range(per_key) for k in keys])

    seen: dict[str, list[int]] = defaultdict(list)
    active = 0
    peak = 0

    @app.agent(tasks, concurrency=64, ordering="key", start="earliest")
    async def record(task: TaskRequested, ctx: Context) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(random.uniform(0, 0.004))
        seen[str(ctx.key)].append(int(task.payload))
        active -= 1

    async with running(app):
        await eventually(lambda: sum(map(len, seen.values())) >= len(keys) * per_key, what="all messages")
    assert {k: v for k, v in seen.items() if v != list(range(per_key))} == {}
    assert set(seen) == set(keys)
    assert peak > 16, f"expected real concurrency within one partition, peak was {peak}"


async def test_retries_keep_key_order_and_outputs_carry_correlation(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App(f"retry-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    results = app.topic(topic_name + ".out", value=TaskCompleted, partitions=2)
    sent = [_task(f"k{k}", s) for s in range(10) for k in range(20)]
    message_ids = dict(zip((t.task_id for t in sent), _publish(settings, registry, tasks, sent), strict=True))

    attempts: dict[str, int] = defaultdict(int)
    done: dict[str, list[int]] = defaultdict(list)

    @app.agent(
        tasks, concurrency=32, retry=Retry(attempts=4, backoff=0.01, max_backoff=0.05), start="earliest"
    )
    async def flaky(task: TaskRequested, ctx: Context) -> None:
        attempts[task.task_id] += 1
        if int(task.payload) % 3 == 0 and attempts[task.task_id] < 3:
            raise ConnectionError("transient")
        done[str(ctx.key)].append(int(task.payload))
        await ctx.send(
            results, TaskCompleted(task_id=task.task_id, agent="flaky", status=TaskStatus.SUCCEEDED)
        )

    async with running(app) as run:
        await eventually(lambda: message_count(settings, results.name) >= len(sent), what="all results")
    assert all(v == list(range(10)) for v in done.values()), dict(done)
    assert run.workers[0].stats.retries == 2 * sum(1 for t in sent if int(t.payload) % 3 == 0)
    assert run.workers[0].stats.dead_lettered == 0

    outputs = list(
        tail(settings, registry, results.name, from_beginning=True, limit=len(sent), idle_timeout=20)
    )
    assert len(outputs) == len(sent)
    for out in outputs:
        assert out.value is not None
        task_id = out.value["task_id"]
        assert out.key == task_id.rsplit("-", 1)[0], "the input's key is carried to the output"
        assert out.headers[CAUSATION_ID] == message_ids[task_id]
        assert out.headers[CORRELATION_ID] == message_ids[task_id], (
            "origin's correlation id is its message id"
        )


async def test_poison_and_exhausted_messages_land_in_the_dead_letter_topic_once(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App(f"dlq-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=1)
    handled: list[str] = []

    @app.agent(tasks, concurrency=8, retry=Retry(attempts=2, backoff=0.01), start="earliest")
    async def picky(task: TaskRequested, ctx: Context) -> None:
        if task.payload == "bad":
            raise ValueError(f"cannot handle {task.task_id}")
        handled.append(task.task_id)

    agent = app.agents["picky"]
    TopicAdmin(settings, registry).apply([tasks])
    _publish(settings, registry, tasks, [_task("a", 0), _task("a", 1, "bad")])
    produce_raw(settings, topic_name, b"definitely not avro", key=b"a")
    produce_raw(settings, topic_name, b"\x00\x7f\xff\xff\x01\x02", key=b"b")  # unknown schema id
    _publish(settings, registry, tasks, [_task("a", 2), _task("c", 0)])

    async with running(app):
        await eventually(lambda: len(handled) == 3, what="good messages handled")
        await eventually(lambda: message_count(settings, agent.dead_letter_topic) >= 3, what="dead letters")
        await asyncio.sleep(1.0)  # nothing more may arrive
    assert sorted(handled) == ["a-0", "a-2", "c-0"]
    assert handled.index("a-0") < handled.index("a-2"), "key a stays in order around its dead letter"
    letters = list(tail(settings, registry, agent.dead_letter_topic, from_beginning=True, idle_timeout=3))
    assert len(letters) == 3
    by_offset = {int(m.headers[hdr.DLQ_SOURCE_OFFSET]): m.headers for m in letters}
    assert sorted(by_offset) == [1, 2, 3]
    assert by_offset[1][hdr.DLQ_ERROR_CLASS] == "builtins.ValueError"
    assert by_offset[1][hdr.DLQ_REASON] == "cannot handle a-1"
    assert by_offset[1][hdr.DLQ_ATTEMPTS] == "2"
    assert "magic byte" in by_offset[2][hdr.DLQ_REASON]
    assert by_offset[2][hdr.DLQ_ERROR_CLASS] == "streams.errors.DeserializationError"
    assert by_offset[2][hdr.DLQ_ATTEMPTS] == "0"
    assert "unknown" in by_offset[3][hdr.DLQ_REASON]
    for headers in by_offset.values():
        assert headers[hdr.DLQ_SOURCE_TOPIC] == topic_name
        assert headers[hdr.DLQ_SOURCE_PARTITION] == "0"
        assert headers[hdr.DLQ_AGENT] == "picky"


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
        from streams import headers as hdr

        publisher._producer.produce(  # same bytes and headers, new offset
            topic_name,
            publisher.encoder(tasks)(_task("k0", 999)),
            key=b"k0",
            headers=[(hdr.MESSAGE_ID, twice.encode()), (hdr.CORRELATION_ID, twice.encode())],
        )
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


async def test_dead_letters_replay_once_after_a_fix(
    cli,
    settings: Settings,
    registry: ConfluentRegistry,
    topic_name: str,  # type: ignore[no-untyped-def]
) -> None:
    app = App(f"replay-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    sent = [_task(f"k{i}", i) for i in range(6)]
    ids = _publish(settings, registry, tasks, sent)
    fixed = False
    handled: dict[str, dict[str, str]] = {}

    @app.agent(tasks, start="earliest")
    async def fragile(task: TaskRequested, ctx: Context) -> None:
        if not fixed and int(task.payload) % 2:
            raise RuntimeError("bug")
        handled[task.task_id] = ctx.headers

    agent = app.agents["fragile"]
    async with running(app):
        await eventually(lambda: message_count(settings, agent.dead_letter_topic) == 3, what="3 dead letters")
        assert sorted(handled) == ["k0-0", "k2-2", "k4-4"]
        fixed = True
        replayed = cli("dlq", "replay", agent.dead_letter_topic)
        assert replayed.returncode == 0, replayed.stderr
        assert f"replayed 3 dead letter(s): 3 to {topic_name}" in replayed.stdout
        await eventually(lambda: len(handled) == 6, what="replayed letters handled")
        again = cli("dlq", "replay", agent.dead_letter_topic)
        assert again.returncode == 0 and "nothing to replay" in again.stdout, again.stdout
    by_id = dict(zip((t.task_id for t in sent), ids, strict=True))
    for task_id in ("k1-1", "k3-3", "k5-5"):
        headers = handled[task_id]
        assert headers["message-id"] == by_id[task_id], "a replayed message keeps its identity"
        assert headers[hdr.DLQ_REPLAYED_FROM].startswith(agent.dead_letter_topic + "@")
        assert hdr.DLQ_REASON not in headers
