"""agents/capability_routing.py on the in-memory twin: a critical call starts ahead of the low ones
queued before it, calls go to the pool with less work waiting, and a pool not running gets none."""

from __future__ import annotations

import pytest

from agents.capability_routing import build
from streams.events import TaskRequested
from streams.testing import TestApp

pytestmark = pytest.mark.unit

QUICK = {"gpu": (2, 0.001), "cpu": (1, 0.001)}


def _text(task_id: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="translate", payload="hello world")


async def test_a_critical_call_starts_before_the_low_calls_queued_ahead_of_it() -> None:
    app = build("routing-prio", QUICK)
    async with TestApp(app) as t:
        for i in range(20):
            await t.call("translate", _text(f"low-{i}"), priority="low", settle=False)
        critical = await t.call("translate", _text("critical"), priority="critical", settle=False)
        await t.settle()
        answered = [reply.request_id for reply in t.sent(app.specialists["translate"].replies)]
    assert len(answered) == 21
    # Three slots in all (gpu 2, cpu 1): the critical call is in the first wave of starts.
    assert answered.index(critical) < 3, answered


async def test_calls_go_to_the_pool_with_less_work_waiting() -> None:
    app = build("routing-load", QUICK)
    cpu_low = app.specialists["translate"].requests_for("low", "cpu")
    async with TestApp(app) as t:
        for i in range(4):  # the cpu pool has a backlog of four
            await t.publish(cpu_low, _text(f"queued-{i}"), settle=False)
        for i in range(6):
            await t.call("translate", _text(f"call-{i}"), priority="low", settle=False)
        specialist = app.specialists["translate"]
        sent = {
            pool: {text.task_id for text in t.sent(specialist.requests_for("low", pool))} for pool in QUICK
        }
        await t.settle()
        answered = await t.call("translate", _text("last"))
    assert sent["gpu"] == {f"call-{i}" for i in range(5)}, "to gpu until both pools have as much waiting"
    assert sent["cpu"] - {f"queued-{i}" for i in range(4)} == {"call-5"}
    assert answered.agent == "gpu" and answered.result == "olleh dlrow"


async def test_a_pool_not_running_gets_no_calls() -> None:
    app = build("routing-rotation", QUICK)
    async with TestApp(app, agents=["translate.cpu"]) as t:
        answers = [await t.call("translate", _text(f"c{i}"), priority="critical") for i in range(3)]
    assert [done.agent for done in answers] == ["cpu"] * 3
