"""Circuit breakers on the in-memory twin, where several engine calls meet: failures answered at once
are all counted, a trial decided by a failed attempt stays the trial, and every partition of every
workflow keeps a copy of the breaker that hears of the others' failures, trials and closes."""

from __future__ import annotations

import asyncio
import zlib

import pytest

from streams import App, Breaker, CallFailed, CallTimeout, Context, Middleware, Workflow
from streams.events import BreakerDecision, BreakerStatus, TaskCompleted, TaskRequested
from streams.middleware import CallNext
from streams.testing import TestApp
from streams.workflows.messages import start_event
from tests.unit.test_workflow_breakers import _app, _ask, _done, _state, _task

pytestmark = pytest.mark.unit


class _YieldAfterHandling(Middleware):
    """Lets other handler calls run between a call's end and its table writes being applied, as any
    middleware that awaits after ``call_next`` does."""

    async def handle(self, ctx: Context, call_next: CallNext) -> None:
        await call_next()
        await asyncio.sleep(0)


async def test_failures_answered_at_once_are_all_counted() -> None:
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=4, within=60, cool_down=30), [_YieldAfterHandling()])
    async with TestApp(app) as t:
        definition = app.workflows["ask"]
        for i in range(4):  # four runs at once: their failures reach the engine together
            start = start_event(definition, _task(f"c{i}"), f"c{i}", t.payloads, "test", t.clock.millis())
            await t.publish(definition.events, start, key=f"c{i}", settle=False)
        await t.settle()
        assert [t.result("ask", f"c{i}").result for i in range(4)] == ["failed"] * 4
        assert _state(t) is BreakerStatus.OPEN


class _FailOnce(Middleware):
    """Fails the engine's first attempt at run ``key``'s start after the handler ran: its decisions
    were made, and nothing of the attempt commits."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.failed = False

    async def handle(self, ctx: Context, call_next: CallNext) -> None:
        await call_next()
        if ctx.agent == "ask" and ctx.key == self.key and not self.failed:
            self.failed = True
            raise RuntimeError("engine lost before its commit")


async def test_a_trial_decided_by_an_attempt_that_failed_is_the_same_trial_when_handled_again() -> None:
    health, asked = {"up": True}, []
    crash = _FailOnce("z")
    app = _app(health, asked, Breaker(failures=1, cool_down=30, fallback="research-lite"), [crash])
    async with TestApp(app) as t:
        health["up"] = False
        await _ask(t, "c0")
        health["up"] = True
        await t.advance(31)
        await t.start("ask", _task("z"), workflow_id="z")  # decided the trial, then failed
        assert crash.failed and t.journal("ask", "z") is None and len(t.dead_letters("ask")) == 1
        assert await _ask(t, "q") == "lite", "z's trial is out"
        await t.replay_dead_letters("ask")
        assert t.result("ask", "z").result == "full"
        journal = t.journal("ask", "z")
        assert journal is not None and journal.steps[0].breaker is BreakerDecision.TRIAL
        assert _state(t) is BreakerStatus.CLOSED


def _ids_by_partition(partitions: int) -> list[str]:
    """A run id for each partition of a workflow's events (the twin partitions keys as librdkafka)."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(zlib.crc32(f"r{i}".encode()) % partitions, f"r{i}")
    return [found[p] for p in range(partitions)]


def _add_wide(app: App) -> None:
    """A second workflow calling research, on three partitions."""

    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=3)
    async def wide(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            return await wf.call("research", case, timeout=10)
        except (CallFailed, CallTimeout) as exc:
            return _done(case.task_id, type(exc).__name__)


async def _wide(t: TestApp, workflow_id: str) -> str:
    await t.start("wide", _task(workflow_id), workflow_id=workflow_id)
    result: TaskCompleted = t.result("wide", workflow_id)
    return result.result or ""


def _states(t: TestApp) -> list[BreakerStatus | None]:
    """research's breaker in each partition of wide, then in ask's."""
    found = [t.breaker("wide", "research", partition=p) for p in range(3)] + [t.breaker("ask", "research")]
    return [None if state is None else state.status for state in found]


async def test_every_partition_of_every_workflow_counts_each_failure_and_closes_on_one_trial() -> None:
    health, asked = {"up": False}, []
    app = _app(health, asked, Breaker(failures=3, within=60, cool_down=30, fallback="research-lite"))
    _add_wide(app)
    first, second, third = _ids_by_partition(3)
    async with TestApp(app) as t:
        assert await _wide(t, first) == "CallFailed"
        assert await _ask(t, "c0") == "failed"
        assert _states(t) == [BreakerStatus.CLOSED] * 4, "two failures, each counted everywhere"
        assert await _wide(t, second) == "CallFailed"  # the third, in another partition
        assert _states(t) == [BreakerStatus.OPEN] * 4
        assert [await _wide(t, third), await _ask(t, "c1")] == ["lite", "lite"]

        health["up"] = True
        await t.advance(31)
        assert await _wide(t, first + "-trial") == "full"
        assert _states(t) == [BreakerStatus.CLOSED] * 4, "its success closed every copy"
        assert await _ask(t, "c2") == "full"
    assert [a for a in asked if a.startswith("research:")] == [
        f"research:{first}",
        "research:c0",
        f"research:{second}",
        f"research:{first}-trial",
        "research:c2",
    ]


async def test_a_trial_out_in_one_partition_keeps_the_others_calls_away_and_its_timeout_reopens_all() -> None:
    health, asked = {"up": True}, []
    app = _app(health, asked, Breaker(failures=2, within=60, cool_down=30, fallback="research-lite"))
    _add_wide(app)
    first, second, _ = _ids_by_partition(3)
    async with TestApp(app, agents=["wide", "ask", "research-lite"]) as t:  # research answers nobody
        for workflow_id in (first, second):
            await t.start("wide", _task(workflow_id), workflow_id=workflow_id)
        await t.advance(10)
        assert [t.result("wide", i).result for i in (first, second)] == ["CallTimeout"] * 2
        assert _states(t) == [BreakerStatus.OPEN] * 4
        await t.advance(31)
        await t.start("wide", _task("trial"), workflow_id=first + "-trial")  # no answer comes
        assert _states(t) == [BreakerStatus.HALF_OPEN] * 4
        assert await _ask(t, "c0") == "lite", "another workflow: kept away while the trial is out"
        await t.start("wide", _task("other"), workflow_id=second + "-other")
        journal = t.journal("wide", second + "-other")
        assert journal is not None and journal.steps[0].breaker is BreakerDecision.FALLBACK
        await t.advance(10)  # the trial times out
        assert _states(t) == [BreakerStatus.OPEN] * 4
        opened = [t.breaker("wide", "research", partition=p) for p in range(3)]
        assert [state.opens for state in opened if state] == [2, 2, 2]
