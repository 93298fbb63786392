"""Agent behaviour, written once and run on the in-memory twin and on the real broker."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import datetime
from typing import Any

from streams import AtLeastOnce, Context, ExactlyOnce, Retry, Session, Sliding
from streams import headers as hdr
from streams.events import MetricSample, TaskCompleted, TaskRequested, TaskStatus, WindowSummary
from tests._records import EPOCH, count_up, merge_summaries, observed, summarize
from tests.cases._transports import Transport


def _task(key: str, seq: int, payload: str | None = None) -> tuple[str, TaskRequested]:
    return key, TaskRequested(task_id=f"{key}-{seq}", capability="test", payload=payload or str(seq))


async def test_key_order_holds_with_64_handlers_on_one_partition(transport: Transport) -> None:
    app = transport.app("order")
    tasks = app.topic(transport.topic_name("order"), value=TaskRequested, partitions=1)
    keys, per_key = [f"k{i}" for i in range(100)], 10
    seen: dict[str, list[int]] = defaultdict(list)
    active = peak = 0

    @app.agent(tasks, concurrency=64)
    async def record(task: TaskRequested, ctx: Context) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(random.uniform(0, 0.004))
        seen[str(ctx.key)].append(int(task.payload))
        active -= 1

    async with transport.run(app):
        # Round-robin over keys so every key's messages are spread through the partition.
        await transport.publish(tasks, [_task(k, s) for s in range(per_key) for k in keys])
        await transport.until(lambda: sum(map(len, seen.values())) >= len(keys) * per_key, "all messages")
    assert {k: v for k, v in seen.items() if v != list(range(per_key))} == {}
    assert set(seen) == set(keys)
    assert peak > 16, f"expected real concurrency within one partition, peak was {peak}"


async def test_retries_keep_key_order_and_outputs_carry_key_correlation_and_cause(
    transport: Transport,
) -> None:
    app = transport.app("retry")
    tasks = app.topic(transport.topic_name("retry"), value=TaskRequested, partitions=2)
    results = app.topic(transport.topic_name("retry.out"), value=TaskCompleted, partitions=2)
    sent = [_task(f"k{k}", s) for s in range(6) for k in range(10)]
    attempts: dict[str, int] = defaultdict(int)
    done: dict[str, list[int]] = defaultdict(list)

    @app.agent(tasks, concurrency=32, retry=Retry(attempts=4, backoff=0.01, max_backoff=0.05))
    async def flaky(task: TaskRequested, ctx: Context) -> None:
        attempts[task.task_id] += 1
        if int(task.payload) % 3 == 0 and attempts[task.task_id] < 3:
            raise ConnectionError("transient")
        done[str(ctx.key)].append(int(task.payload))
        await ctx.send(
            results, TaskCompleted(task_id=task.task_id, agent="flaky", status=TaskStatus.SUCCEEDED)
        )

    async with transport.run(app):
        ids = await transport.publish(tasks, sent)
        outputs = await transport.read(results.name, len(sent))
    message_ids = dict(zip((value.task_id for _, value in sent), ids, strict=True))
    assert all(v == list(range(6)) for v in done.values()), dict(done)
    assert sum(attempts.values()) == len(sent) + 2 * sum(1 for _, t in sent if int(t.payload) % 3 == 0)
    assert len(outputs) == len(sent), "each input sent exactly one output"
    for out in outputs:
        task_id = out.value["task_id"]
        assert out.key == task_id.rsplit("-", 1)[0], "the input's key is carried to the output"
        assert out.headers[hdr.CAUSATION_ID] == message_ids[task_id]
        assert out.headers[hdr.CORRELATION_ID] == message_ids[task_id], "the origin's id correlates"
        assert out.headers[hdr.SENT_BY] == "flaky"


async def test_poison_and_exhausted_messages_land_in_the_dead_letter_topic_once(transport: Transport) -> None:
    app = transport.app("dlq")
    tasks = app.topic(transport.topic_name("dlq"), value=TaskRequested, partitions=1)
    handled: list[str] = []

    @app.agent(tasks, concurrency=8, retry=Retry(attempts=2, backoff=0.01))
    async def picky(task: TaskRequested, ctx: Context) -> None:
        if task.payload == "bad":
            raise ValueError(f"cannot handle {task.task_id}")
        handled.append(task.task_id)

    agent = app.agents["picky"]
    async with transport.run(app):
        await transport.publish(tasks, [_task("a", 0), _task("a", 1, "bad")])
        await transport.publish_raw(tasks, b"definitely not avro", key=b"a")
        await transport.publish_raw(tasks, b"\x00\x7f\xff\xff\x01\x02", key=b"b")  # unknown schema id
        await transport.publish(tasks, [_task("a", 2), _task("c", 0)])
        await transport.until(lambda: len(handled) == 3, "good messages handled")
        letters = await transport.read(agent.dead_letter_topic, 3)
    assert sorted(handled) == ["a-0", "a-2", "c-0"]
    assert handled.index("a-0") < handled.index("a-2"), "key a stays in order around its dead letter"
    assert len(letters) == 3, "each dead letter once"
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
        assert headers[hdr.DLQ_SOURCE_TOPIC] == tasks.name
        assert headers[hdr.DLQ_SOURCE_PARTITION] == "0"
        assert headers[hdr.DLQ_AGENT] == "picky"


async def test_dead_letters_replay_once_and_keep_their_identity(transport: Transport) -> None:
    app = transport.app("replay")
    tasks = app.topic(transport.topic_name("replay"), value=TaskRequested, partitions=2)
    sent = [_task(f"k{i}", i) for i in range(6)]
    fixed = False
    handled: dict[str, dict[str, str]] = {}

    @app.agent(tasks)
    async def fragile(task: TaskRequested, ctx: Context) -> None:
        if not fixed and int(task.payload) % 2:
            raise RuntimeError("bug")
        handled[task.task_id] = ctx.headers

    agent = app.agents["fragile"]
    async with transport.run(app):
        ids = await transport.publish(tasks, sent)
        await transport.read(agent.dead_letter_topic, 3)
        await transport.until(lambda: len(handled) == 3, "the good half")
        assert sorted(handled) == ["k0-0", "k2-2", "k4-4"]
        fixed = True
        assert await transport.replay(app, "fragile") == 3
        await transport.until(lambda: len(handled) == 6, "replayed letters handled")
        assert await transport.replay(app, "fragile") == 0, "a second replay finds nothing new"
    by_id = dict(zip((value.task_id for _, value in sent), ids, strict=True))
    for task_id in ("k1-1", "k3-3", "k5-5"):
        headers = handled[task_id]
        assert headers[hdr.MESSAGE_ID] == by_id[task_id], "a replayed message keeps its identity"
        assert headers[hdr.DLQ_REPLAYED_FROM].startswith(agent.dead_letter_topic + "@")
        assert hdr.DLQ_REASON not in headers


async def test_dedup_skips_a_republished_message(transport: Transport) -> None:
    app = transport.app("dedup")
    tasks = app.topic(transport.topic_name("dedup"), value=TaskRequested, partitions=2)
    side_effects: list[str] = []

    @app.agent(tasks, concurrency=8, guarantee=AtLeastOnce(dedup=True))
    async def effect(task: TaskRequested, ctx: Context) -> None:
        side_effects.append(task.task_id)

    async with transport.run(app):
        ids = await transport.publish(tasks, [_task(f"k{i % 10}", i) for i in range(50)])
        # A producer-side duplicate: the same message (same id) published again at a new offset.
        key, first = _task("k0", 0)
        await transport.publish_copy(tasks, key, first, ids[0])
        await transport.publish(tasks, [_task("k0", 99)])
        await transport.until(lambda: "k0-99" in side_effects, "the message after the copy")
    assert sorted(side_effects) == sorted({*side_effects}), "no side effect ran twice"
    assert len(side_effects) == 51


async def test_a_table_counts_per_key_and_its_changelog_ends_with_each_keys_last_count(
    transport: Transport,
) -> None:
    """A commit logs the last write of each key since the previous one: between one record per key
    (everything in one commit) and one per call, ending with every key's final count."""
    app = transport.app("table")
    tasks = app.topic(transport.topic_name("table"), value=TaskRequested, partitions=3)
    counted = app.topic(transport.topic_name("table.out"), value=TaskCompleted, partitions=3)
    counts = app.table("counts", value=MetricSample)

    @app.agent(tasks, concurrency=16, tables=[counts])
    async def count(task: TaskRequested, ctx: Context) -> None:
        seen = ctx.table(counts).update(str(ctx.key), count_up)
        assert seen is not None
        await ctx.send(
            counted,
            TaskCompleted(
                task_id=task.task_id, agent="count", status=TaskStatus.SUCCEEDED, result=str(int(seen.value))
            ),
        )

    changelog_topic = app.agents["count"].changelog(counts).name
    async with transport.run(app):
        await transport.publish(tasks, [_task(f"k{k}", s) for s in range(4) for k in range(10)])
        outputs = await transport.read(counted.name, 40)
        logged: dict[str, list[float]] = {}
        for _ in range(100):  # the records of the last commit follow the outputs within its interval
            logged = defaultdict(list)
            for record in await transport.read(changelog_topic, 10):
                logged[str(record.key)].append(record.value["value"])
            if all(values[-1] == 4.0 for values in logged.values()) and len(logged) == 10:
                break
            await asyncio.sleep(0.1)
    by_key: dict[str, list[str]] = defaultdict(list)
    for out in outputs:
        by_key[str(out.key)].append(out.value["result"])
    assert by_key == {f"k{k}": ["1", "2", "3", "4"] for k in range(10)}
    assert {key: values[-1] for key, values in logged.items()} == {f"k{k}": 4.0 for k in range(10)}
    assert all(values == sorted(set(values)) for values in logged.values()), "each record a later count"
    assert 10 <= sum(len(values) for values in logged.values()) <= 40


def _window_results(seen: list[Any]) -> list[tuple[str, float, float, int]]:
    """(key, start s, end s, count) of WindowSummary values read back, times relative to EPOCH."""

    def seconds(moment: str | datetime) -> float:
        when = moment if isinstance(moment, datetime) else datetime.fromisoformat(moment)
        return (when - EPOCH).total_seconds()

    return [
        (s.value["key"], seconds(s.value["start"]), seconds(s.value["end"]), s.value["count"]) for s in seen
    ]


async def test_session_windows_merge_out_of_order_records_and_close_after_gap_and_grace(
    transport: Transport,
) -> None:
    app = transport.app("session")
    samples = app.topic(transport.topic_name("session"), value=MetricSample, partitions=1)
    sessions = app.topic(transport.topic_name("session.out"), value=WindowSummary, partitions=1)
    app.windowed(
        samples,
        Session(gap=5, grace=10),
        into=sessions,
        merge=merge_summaries,
        timestamp=lambda s: s.observed_at,
        guarantee=ExactlyOnce(),
    )(summarize)
    events = [("u", 0), ("u", 10), ("u", 5), ("v", 2), ("w", 60)]  # u@5 joins [0, 0] and [10, 10]
    async with transport.run(app):
        await transport.publish(samples, [(key, observed(key, 1, second)) for key, second in events])
        results = _window_results(await transport.read(sessions.name, 2))
    assert results == [("v", 2, 2, 1), ("u", 0, 10, 3)], "closed in the order of their close times"


async def test_sliding_windows_emit_each_records_window_when_it_closes(transport: Transport) -> None:
    app = transport.app("sliding")
    samples = app.topic(transport.topic_name("sliding"), value=MetricSample, partitions=1)
    slides = app.topic(transport.topic_name("sliding.out"), value=WindowSummary, partitions=1)
    app.windowed(
        samples, Sliding(size=10), into=slides, timestamp=lambda s: s.observed_at, guarantee=ExactlyOnce()
    )(summarize)
    async with transport.run(app):
        await transport.publish(samples, [("s", observed("s", 1, second)) for second in (0, 6, 10, 17, 40)])
        results = _window_results(await transport.read(slides.name, 4))
    assert results == [("s", -10, 0, 1), ("s", -4, 6, 2), ("s", 0, 10, 3), ("s", 7, 17, 2)]
