"""Priority lanes: the scheduler starts higher classes first with a share for the lower ones, the
processor pauses lower classes' fetching while a higher one has work, and the poller pauses exactly
those partitions; on the twin, callers and workflows reach the lane they ask for."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

import pytest
from confluent_kafka import TopicPartition

from streams import App, ConfigError, Context, Limits, Priorities, Retry, TransientError, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus
from streams.middleware import Chain
from streams.runtime.lanes import LaneScheduler
from streams.serde.codec import AvroEncoder, RecordDecoder
from streams.serde.registry import InMemoryRegistry
from streams.testing import TestApp
from streams.testing.broker import BrokerSender, InMemoryBroker
from streams.worker.delivery import AtLeastOnceDelivery
from streams.worker.handling import MessageHandler
from streams.worker.items import WorkItem
from streams.worker.outbox import Encoders
from streams.worker.processing import Processor
from streams.worker.stats import WorkerStats
from tests.unit.test_poller import FakeConsumer, _poller

pytestmark = pytest.mark.unit


@dataclass(eq=False)
class _Item:
    topic: str
    partition: int
    offset: int
    key: bytes | None = None


def _drain(scheduler: LaneScheduler[_Item]) -> list[str]:
    """Start and finish one item at a time; the topics in the order they started."""
    order = []
    while (item := scheduler.take_ready()) is not None:
        order.append(item.topic)
        scheduler.finished(item)
    return order


def _flood(scheduler: LaneScheduler[_Item], topic: str, count: int) -> None:
    for offset in range(count):
        scheduler.submit(_Item(topic, 0, offset, key=str(offset).encode()))


def test_higher_ranks_start_first_whatever_arrived_before() -> None:
    scheduler: LaneScheduler[_Item] = LaneScheduler("key", 1, ranks={"critical": 0, "low": 3})
    _flood(scheduler, "low", 5)
    _flood(scheduler, "critical", 2)
    assert _drain(scheduler) == ["critical", "critical", "low", "low", "low", "low", "low"]


def test_a_lower_rank_gets_its_minimum_share_under_a_flood_of_a_higher_one() -> None:
    scheduler: LaneScheduler[_Item] = LaneScheduler("key", 1, ranks={"hi": 0, "lo": 1}, min_share=0.1)
    _flood(scheduler, "hi", 100)
    _flood(scheduler, "lo", 20)
    order = _drain(scheduler)
    first_90 = order[:90]
    assert first_90.count("lo") == 9, "one start in ten while both wait"
    assert order.index("lo") == 9
    assert order.count("lo") == 20


def test_with_no_share_the_order_is_strict() -> None:
    scheduler: LaneScheduler[_Item] = LaneScheduler("key", 1, ranks={"hi": 0, "lo": 1})
    _flood(scheduler, "hi", 50)
    _flood(scheduler, "lo", 5)
    assert _drain(scheduler) == ["hi"] * 50 + ["lo"] * 5


def test_the_poller_pauses_only_the_partitions_of_the_topics_asked_for() -> None:
    consumer = FakeConsumer()
    poller = _poller(consumer)
    poller._on_assign(consumer, [TopicPartition(t, p) for t in ("hi", "lo") for p in (0, 1)])  # type: ignore[arg-type]
    poller.want_paused({"lo"})
    poller._apply_pause()
    assert consumer.calls == [("pause", [("lo", 0), ("lo", 1)])]
    assert poller.paused and poller.paused_partitions == 2
    poller._on_assign(consumer, [TopicPartition("lo", 2), TopicPartition("hi", 2)])  # type: ignore[arg-type]
    assert consumer.calls[-1] == ("pause", [("lo", 2)]), "a new partition of a paused topic pauses too"
    poller.want_paused(True)
    poller._apply_pause()
    assert consumer.calls[-1] == ("pause", [("hi", 0), ("hi", 1), ("hi", 2)])
    poller.want_paused(frozenset())
    poller._apply_pause()
    assert consumer.calls[-1][0] == "resume" and len(consumer.calls[-1][1]) == 6
    assert not poller.paused


def _processor(
    priorities: Priorities, limits: Limits | None = None
) -> tuple[Processor, list[bool | frozenset[str]], asyncio.Event, dict[str, AvroEncoder], list[str]]:
    """A processor of two priority topics whose handlers wait for the gate (messages stay in flight),
    and what it asked the poller to pause."""
    app = App("prio")
    hi = app.topic("prio.hi", value=TaskRequested, partitions=1)
    lo = app.topic("prio.lo", value=TaskRequested, partitions=1)
    gate = asyncio.Event()

    @app.agent(lo, concurrency=1, limits=limits or Limits())
    async def work(task: TaskRequested, ctx: Context) -> None:
        await gate.wait()

    agent = dataclasses.replace(
        app.agents["work"], priority_topics=(hi.name, lo.name), min_share=priorities.min_share
    )
    registry = InMemoryRegistry()
    broker = InMemoryBroker()
    broker.create_topic(agent.dead_letter_topic, 1)
    stats = WorkerStats()
    handler = MessageHandler(
        agent,
        RecordDecoder(registry, TaskRequested),
        AtLeastOnceDelivery(BrokerSender(broker), Encoders(registry)),
        stats,
        middleware=Chain(()),
    )
    asked: list[bool | frozenset[str]] = []
    failures: list[BaseException] = []
    processor = Processor(agent, handler, stats, on_fatal=failures.append, on_pressure=asked.append)
    encoders = {
        t: AvroEncoder(registry, f"{t}-value", TaskRequested.avro_schema()) for t in (hi.name, lo.name)
    }
    return processor, asked, gate, encoders, [hi.name, lo.name]


def _items(encoders: dict[str, AvroEncoder], topic: str, offsets: range) -> list[WorkItem]:
    items = []
    for offset in offsets:
        value = encoders[topic](TaskRequested(task_id=str(offset), capability="c", payload="p"))
        items.append(WorkItem(topic, 0, offset, str(offset).encode(), value, [], 0, len(value)))
    return items


async def test_lower_lanes_pause_while_a_higher_one_has_work_and_resume_after() -> None:
    processor, asked, gate, encoders, (hi, lo) = _processor(Priorities(min_share=0))
    processor.accept(_items(encoders, lo, range(3)))
    assert asked == [], "no higher work: the low lane keeps fetching"
    processor.accept(_items(encoders, hi, range(1)))
    assert asked == [frozenset({lo})]
    gate.set()
    assert await processor.finish_received(5.0) == 0
    assert asked[-1] is False, "everything done: both lanes fetch again"


async def test_with_a_share_a_lower_lane_keeps_a_reserve_before_it_pauses() -> None:
    processor, asked, gate, encoders, (hi, lo) = _processor(Priorities(min_share=0.1))
    processor.accept(_items(encoders, hi, range(2)))
    assert asked == [], "the low lane holds less than its reserve (concurrency 1): it still fetches"
    processor.accept(_items(encoders, lo, range(1)))
    assert asked == [frozenset({lo})]
    gate.set()
    assert await processor.finish_received(5.0) == 0


async def test_past_the_bound_only_lanes_holding_work_pause_so_a_higher_request_gets_in() -> None:
    processor, asked, gate, encoders, (hi, lo) = _processor(Priorities(min_share=0), Limits(max_in_flight=4))
    processor.accept(_items(encoders, lo, range(4)))
    assert asked == [frozenset({lo})], "the flood of the low lane pauses it, not the high lane"
    processor.accept(_items(encoders, hi, range(1)))
    assert asked[-1] == frozenset({hi, lo}), "both hold work past the bound now"
    gate.set()
    assert await processor.finish_received(5.0) == 0
    assert asked[-1] is False


# ---------------------------------------------------------------------------------- on the twin


def _task(task_id: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="work", payload="")


def _done(task: TaskRequested) -> TaskCompleted:
    return TaskCompleted(task_id=task.task_id, agent="work", status=TaskStatus.SUCCEEDED, result="ok")


async def test_a_critical_call_is_served_before_a_queued_flood_of_low_ones() -> None:
    app = App("prio-twin")
    handled: list[str] = []

    @app.specialist("work", input=TaskRequested, output=TaskCompleted, priorities=Priorities(min_share=0.1))
    async def work(task: TaskRequested, ctx: Context) -> TaskCompleted:
        handled.append(task.task_id)
        return _done(task)

    async with TestApp(app) as t:
        for i in range(30):
            await t.call("work", _task(f"low-{i}"), priority="low", settle=False)
        await t.call("work", _task("critical"), priority="critical", settle=False)
        await t.settle()
        assert handled[0] == "critical"
        assert len(handled) == 31
        assert (await t.call("work", _task("high"), priority="high")).task_id == "high"
        lanes = app.specialists["work"].pools[None].lanes
        assert [len(t.sent(lanes[p])) for p in ("critical", "high", "normal", "low")] == [1, 1, 0, 30]
        assert lanes["normal"].name == "prio-twin.work.requests", "normal keeps the capability's topic"
        assert lanes["low"].name == "prio-twin.work.requests.low"
        with pytest.raises(ConfigError, match="unknown priority 'urgent'"):
            await t.call("work", _task("x"), priority="urgent")  # type: ignore[arg-type]


async def test_a_workflow_call_goes_to_its_lane_and_its_retries_stay_there() -> None:
    app = App("prio-wf")
    tries: list[str] = []

    @app.specialist("work", input=TaskRequested, output=TaskCompleted)
    async def work(task: TaskRequested, ctx: Context) -> TaskCompleted:
        tries.append(ctx.topic)
        if len(tries) < 3:
            raise TransientError("not yet")
        return _done(task)

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def urgent(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        done: TaskCompleted = await wf.call(
            "work", case, priority="critical", retry=Retry(attempts=3, backoff=1), timeout=60
        )
        return done

    async with TestApp(app) as t:
        workflow_id = await t.start("urgent", _task("w"))
        for _ in range(5):
            await t.advance(2)
        assert t.result("urgent", workflow_id).task_id == "w"
        journal = t.journal("urgent", workflow_id)
        assert journal is not None
        assert journal.steps[0].priority == "critical" and journal.steps[0].tries == 3
    assert tries == ["prio-wf.work.requests.critical"] * 3


def test_priorities_are_checked_where_they_are_declared() -> None:
    with pytest.raises(ConfigError, match="min_share"):
        Priorities(min_share=0.5)
    app = App("prio-tables")
    topic = app.topic("prio-tables.in", value=TaskRequested)
    table = app.table("t", value=TaskRequested)

    @app.agent(topic, tables=[table])
    async def keep(task: TaskRequested, ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="cannot keep tables"):
        dataclasses.replace(app.agents["keep"], priority_topics=(topic.name, "other"))
