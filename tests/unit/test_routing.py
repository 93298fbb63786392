"""Least-load routing: the choice between pools, pools' loads from heartbeats, and pools on the twin
(calls and workflow steps, whose chosen pool is journaled and never chosen again on replay)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from streams import App, ConfigError, Context, Workflow
from streams.events import AgentHeartbeat, TaskCompleted, TaskRequested, TaskStatus, WorkerState
from streams.routing import PoolLoad, Routing
from streams.telemetry.loads import BeatTable
from streams.testing import TestApp
from streams.workflows.replay import replay

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class _Pool:
    group_id: str


POOLS = {"fast": _Pool("app.work.fast"), "slow": _Pool("app.work.slow")}


class _Loads:
    def __init__(self, loads: dict[str, PoolLoad]) -> None:
        self.loads = loads

    def load(self, group_id: str) -> PoolLoad | None:
        return self.loads.get(group_id)


def test_the_least_loaded_pool_in_rotation_is_chosen() -> None:
    routing = Routing()
    routing.source = _Loads(
        {"app.work.fast": PoolLoad(True, 3), "app.work.slow": PoolLoad(True, 40)},
    )
    assert [routing.choose(POOLS) for _ in range(3)] == ["fast"] * 3
    routing.source = _Loads({"app.work.fast": PoolLoad(False, 0), "app.work.slow": PoolLoad(True, 40)})
    assert routing.choose(POOLS) == "slow", "a pool whose workers stopped beating is out of rotation"


def test_requests_sent_since_the_last_beats_count_so_a_burst_spreads() -> None:
    routing = Routing()
    routing.source = _Loads(
        {"app.work.fast": PoolLoad(True, 0, as_of_ms=1), "app.work.slow": PoolLoad(True, 2, as_of_ms=1)}
    )
    assert [routing.choose(POOLS) for _ in range(6)] == ["fast", "fast", "fast", "slow", "fast", "slow"]


def test_without_loads_requests_are_spread_evenly() -> None:
    routing = Routing()
    assert [routing.choose(POOLS) for _ in range(4)] == ["fast", "slow", "fast", "slow"]
    assert routing.choose({None: _Pool("app.work")}) is None, "one pool: nothing to choose"


def _beat(
    group: str, worker: str, sent_ms: int, *, in_flight: int = 0, lag: int = 0, **more: object
) -> AgentHeartbeat:
    return AgentHeartbeat(
        agent=group,
        worker_id=worker,
        host="h",
        pid=1,
        state=more.get("state", WorkerState.RUNNING),
        assigned_partitions=[0],
        in_flight=in_flight,
        processed_total=0,
        errors_total=0,
        lag=lag,
        sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
        interval_ms=1000,
    )


def test_a_pools_load_adds_up_its_live_workers_latest_beats() -> None:
    table = BeatTable()
    table.add(_beat("g", "w1", 10_000, in_flight=2, lag=5))
    table.add(_beat("g", "w1", 9_000, in_flight=50))  # older, arrived late: ignored
    table.add(_beat("g", "w2", 10_500, in_flight=1))
    assert table.load("g", 11_000) == PoolLoad(True, 8, as_of_ms=10_500)
    assert table.load("g", 13_200) == PoolLoad(True, 1, as_of_ms=10_500), "w1 missed three beats"
    table.add(_beat("g", "w2", 11_000, state=WorkerState.STOPPED))
    assert table.load("g", 13_200) == PoolLoad(False, 0), "nobody live: out of rotation"
    assert table.load("other", 11_000) is None


# ---------------------------------------------------------------------------------- on the twin


def _pooled_app(name: str) -> tuple[App, list[str]]:
    app = App(name)
    served: list[str] = []
    for pool in ("fast", "slow"):

        @app.specialist("work", input=TaskRequested, output=TaskCompleted, pool=pool)
        async def work(task: TaskRequested, ctx: Context, pool: str = pool) -> TaskCompleted:
            served.append(pool)
            return TaskCompleted(task_id=task.task_id, agent=pool, status=TaskStatus.SUCCEEDED)

    return app, served


def _task(task_id: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="work", payload="")


async def test_calls_go_to_the_pool_with_the_least_backlog() -> None:
    app, served = _pooled_app("route-twin")
    specialist = app.specialists["work"]
    assert specialist.requests_for("normal", "slow").name == "route-twin.work.slow.requests"
    assert app.agents["work.slow"].group_id == "route-twin.work.slow"
    async with TestApp(app) as t:
        for i in range(5):  # the slow pool has five requests waiting
            await t.publish(specialist.requests_for("normal", "slow"), _task(f"queued-{i}"), settle=False)
        for i in range(7):
            await t.call("work", _task(f"call-{i}"), settle=False)
        fast = {task.task_id for task in t.sent(specialist.requests_for("normal", "fast"))}
        slow = {task.task_id for task in t.sent(specialist.requests_for("normal", "slow"))}
        assert fast == {f"call-{i}" for i in range(6)}, "to fast until level, and on a tie"
        assert slow - {f"queued-{i}" for i in range(5)} == {"call-6"}
        await t.settle()
        assert sorted(served) == ["fast"] * 6 + ["slow"] * 6


async def test_a_pool_not_running_is_out_of_rotation() -> None:
    app, served = _pooled_app("route-rotation")
    async with TestApp(app, agents=["work.fast"]) as t:
        for i in range(4):
            assert (await t.call("work", _task(f"c{i}"))).agent == "fast"
    assert served == ["fast"] * 4


def test_pools_of_one_capability_take_and_return_the_same_records() -> None:
    app, _ = _pooled_app("route-types")
    with pytest.raises(ConfigError, match="already has a specialist for work in pool fast"):
        app.specialist("work", input=TaskRequested, output=TaskCompleted, pool="fast")
    with pytest.raises(ConfigError, match="pool gpu of work takes TaskCompleted"):
        app.specialist("work", input=TaskCompleted, output=TaskCompleted, pool="gpu")


async def test_a_workflow_journals_the_pool_and_a_replay_never_routes_again() -> None:
    app, _ = _pooled_app("route-wf")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def ask(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        first: TaskCompleted = await wf.call("work", case)
        second: TaskCompleted = await wf.call("work", case)
        return TaskCompleted(
            task_id=case.task_id, agent=f"{first.agent}+{second.agent}", status=TaskStatus.SUCCEEDED
        )

    async with TestApp(app, agents=["ask", "work.slow"]) as t:
        workflow_id = await t.start("ask", _task("w"))
        assert t.result("ask", workflow_id).agent == "slow+slow"
        journal = t.journal("ask", workflow_id)
        assert journal is not None
        assert [step.pool for step in journal.steps] == ["slow", "slow"]

        def refuse(capability: str) -> str | None:
            raise AssertionError(f"routed {capability} again on replay")

        outcome = replay(
            ask,
            journal,
            TaskRequested,
            now_ms=t.clock.millis(),
            payloads=t.payloads,
            output_of=lambda kind, name: TaskCompleted,
            route=refuse,
        )
        assert outcome.requests == [] and outcome.output is not None
        assert outcome.output.agent == "slow+slow", "the journaled answers, from the pool chosen then"
