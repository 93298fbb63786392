"""Workflow policies on the real broker: deadlines, circuit breakers with fallbacks, and sagas."""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib

import pytest

from streams import (
    App,
    Breaker,
    CallFailed,
    CallTimeout,
    Client,
    Context,
    DataError,
    ExactlyOnce,
    Publisher,
    Settings,
    TransientError,
    Workflow,
    WorkflowFailed,
)
from streams import headers as hdr
from streams.admin import TopicAdmin
from streams.events import BreakerState, BreakerStatus, TaskCompleted, TaskRequested, TaskStatus
from streams.serde.registry import ConfluentRegistry
from streams.state_query import read_table
from streams.tail import tail
from streams.telemetry.config import TelemetryConfig
from streams.workflows.breaker import BREAKERS
from streams.workflows.engine import JOURNAL
from tests.integration._agents import eventually, running

pytestmark = pytest.mark.integration


def _one_id_per_partition(prefix: str, partitions: int) -> list[str]:
    """Ids that key one message to each partition (librdkafka's default partitioner: CRC32)."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(zlib.crc32(f"{prefix}-{i}".encode()) % partitions, f"{prefix}-{i}")
    return [found[p] for p in range(partitions)]


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="policies", payload=payload)


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="policies", status=TaskStatus.SUCCEEDED, result=result)


async def test_requests_past_their_deadline_never_reach_a_handler(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = App(f"deadline-{uuid.uuid4().hex[:8]}", settings)
    handled: list[str] = []

    @app.specialist("work", input=TaskRequested, output=TaskCompleted)
    async def work(task: TaskRequested, ctx: Context) -> TaskCompleted:
        handled.append(task.task_id)
        await asyncio.sleep(float(task.payload or 0))
        return _done(task.task_id, "done")

    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    requests = app.specialists["work"].requests
    async with running(app), Client(app, registry=registry) as client:
        with Publisher(settings, registry) as publisher:  # expired before they were even sent
            for i in range(5):
                past = hdr.deadline_header(int(time.time() * 1000) - 1000)
                publisher.publish(requests, _task(f"expired-{i}"), key="k", extra_headers=[past])
        # A call queued behind a slow one on the same key: its 0.5 s pass while it waits.
        slow = asyncio.create_task(client.call("work", _task("slow", "2"), key="same", timeout=30))
        await asyncio.sleep(0.5)
        with pytest.raises(CallTimeout):
            await client.call("work", _task("queued", "0"), key="same", timeout=0.5)
        assert (await slow).result == "done"
        assert (await client.call("work", _task("fresh", "0"), key="same", timeout=30)).result == "done"
    assert sorted(handled) == ["fresh", "slow"], "no expired request reached the handler"
    letters = list(
        tail(settings, registry, f"{app.name}.work.dlq", from_beginning=True, limit=6, idle_timeout=10)
    )
    assert sorted(m.value["task_id"] for m in letters if m.value) == [
        *(f"expired-{i}" for i in range(5)),
        "queued",
    ]
    assert all(m.headers[hdr.DLQ_REASON].startswith("deadline passed") for m in letters)


async def test_a_saga_whose_third_step_fails_runs_exactly_two_compensations_in_reverse(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = App(f"saga-{uuid.uuid4().hex[:8]}", settings)
    undone: list[tuple[str, str]] = []

    @app.specialist("book", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def book(task: TaskRequested, ctx: Context) -> TaskCompleted:
        if task.payload == "car":
            raise DataError("no cars left")
        return _done(task.task_id, task.payload)

    @app.specialist("undo", input=TaskRequested, output=TaskCompleted, guarantee=ExactlyOnce())
    async def undo(task: TaskRequested, ctx: Context) -> TaskCompleted:
        undone.append((task.task_id, task.payload))
        return _done(task.task_id, f"undid {task.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def trip(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        for thing in ("flight", "hotel", "car"):
            await wf.call("book", _task(case.task_id, thing))
            wf.compensate("undo", _task(case.task_id, thing))
        return _done(case.task_id, "booked")

    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    async with running(app), Client(app, registry=registry) as client:
        ids = [await client.start("trip", _task(f"case-{i}")) for i in range(5)]
        for workflow_id in ids:
            with pytest.raises(WorkflowFailed, match="no cars left"):
                await client.result("trip", workflow_id, timeout=120)
    for i in range(5):
        assert [thing for case, thing in undone if case == f"case-{i}"] == ["hotel", "flight"]
    assert len(undone) == 10


async def test_a_failing_specialist_opens_the_breaker_the_fallback_serves_then_it_closes_on_recovery(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    app = App(f"breaker-{uuid.uuid4().hex[:8]}", settings)
    app.breaker("research", Breaker(failures=3, within=60, cool_down=8, fallback="research-lite"))
    health = {"up": False}
    served: list[tuple[str, str]] = []

    @app.specialist("research", input=TaskRequested, output=TaskCompleted)
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        served.append(("research", task.task_id))
        if not health["up"]:
            raise TransientError("research is down")
        return _done(task.task_id, "full")

    @app.specialist("research-lite", input=TaskRequested, output=TaskCompleted)
    async def research_lite(task: TaskRequested, ctx: Context) -> TaskCompleted:
        served.append(("lite", task.task_id))
        return _done(task.task_id, "lite")

    # Three partitions, each with its copy of the breaker: runs land on any of them.
    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=3)
    async def ask(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            return await wf.call("research", case, timeout=30)
        except CallFailed:
            return _done(case.task_id, "failed")

    def copies() -> list[BreakerState]:
        """research's breaker in each partition of ask's engine, from the table's changelog."""
        state = read_table(settings, registry, app.agents["ask"], BREAKERS, timeout=30)
        return [row.value for row in state.rows() if row.key == "research"]

    def every_copy(status: BreakerStatus) -> bool:
        found = copies()
        return len(found) == 3 and all(copy.status is status for copy in found)

    TopicAdmin(settings, registry).apply(list(app.topics.values()))
    # Heartbeats every 0.3 s on a topic of the test's own: each says which breakers its engine holds open.
    beats = TelemetryConfig(heartbeat_interval=0.3, heartbeat_topic=f"{app.name}.heartbeats")
    async with running(app, telemetry=beats), Client(app, registry=registry) as client:

        async def run(task_id: str) -> str:
            workflow_id = await client.start("ask", _task(task_id), workflow_id=task_id)
            done: TaskCompleted = await client.result("ask", workflow_id, timeout=60)
            return done.result or ""

        failing = _one_id_per_partition("fail", 3)
        assert [await run(task_id) for task_id in failing] == ["failed"] * 3
        journals = read_table(settings, registry, app.agents["ask"], JOURNAL, timeout=30)
        assert {row.partition for row in journals.rows() if row.key in failing} == {0, 1, 2}
        # Each failure was counted where it was answered and told to the other partitions.
        await eventually(lambda: every_copy(BreakerStatus.OPEN), within=30, what="every copy open")
        opened = copies()
        assert {copy.last_error for copy in opened} == {"TransientError: research is down"}
        assert [await run("open-1"), await run("open-2")] == ["lite", "lite"], "the fallback serves"

        health["up"] = True
        retry_at = max(copy.retry_at for copy in opened if copy.retry_at is not None)
        # The cool-down is wall-clock time on the broker's timestamps: wait for it to pass.
        await asyncio.sleep(max(0.0, retry_at.timestamp() - time.time()) + 0.2)
        assert await run("trial") == "full", "the first call after the cool-down is the trial"
        await eventually(lambda: every_copy(BreakerStatus.CLOSED), within=30, what="every copy closed")
        assert await run("after") == "full"
        await asyncio.sleep(1.0)  # a few beats after every copy closed
    engine = app.agents["ask"].group_id
    said = [
        m.value["open_breakers"]
        for m in tail(settings, registry, beats.heartbeat_topic, from_beginning=True, idle_timeout=5)
        if m.value is not None and m.value["agent"] == engine and m.value["state"] == "RUNNING"
    ]
    assert ["research"] in said, "the engine's heartbeats said the breaker was open"
    assert said[said.index(["research"]) :][-1] == [], "and, once it closed, that none is"
    assert served == [
        *(("research", task_id) for task_id in failing),
        ("lite", "open-1"),
        ("lite", "open-2"),
        ("research", "trial"),
        ("research", "after"),
    ]
