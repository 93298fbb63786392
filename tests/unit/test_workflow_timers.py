"""Durable timers and signals on the in-memory twin, on its fake clock: sleeps, call timeouts,
signals before and after the code asks, signal timeouts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams import App, CallTimeout, Context, Workflow
from streams.events import (
    StepStatus,
    TaskCompleted,
    TaskRequested,
    TaskStatus,
    WorkflowEvent,
    WorkflowEventKind,
    WorkflowStatus,
)
from streams.testing import TestApp
from tests._records import EPOCH

pytestmark = pytest.mark.unit


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="case", payload=payload)


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="wf", status=TaskStatus.SUCCEEDED, result=result)


def _app() -> App:
    app = App("timers")

    @app.specialist("slow", input=TaskRequested, output=TaskCompleted)
    async def slow(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return _done(task.task_id, "late answer")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def nap(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        started = wf.now()
        await wf.sleep(timedelta(hours=1))
        return _done(case.task_id, f"slept {(wf.now() - started).total_seconds():.0f}s")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def impatient(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            answer = await wf.call("slow", case, timeout=30)
        except CallTimeout:
            return _done(case.task_id, "gave up")
        return answer

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def approval(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            decision = await wf.signal("approval", TaskCompleted, timeout=timedelta(hours=24))
        except CallTimeout:
            return _done(case.task_id, "expired")
        return _done(case.task_id, f"approved by {decision.agent}: {decision.result}")

    return app


async def test_a_sleep_ends_when_its_time_has_come_and_not_before() -> None:
    app = _app()
    async with TestApp(app) as t:
        workflow_id = await t.start("nap", _task("c1"))
        await t.advance(3599)
        journal = t.journal("nap", workflow_id)
        assert journal is not None and journal.status is WorkflowStatus.RUNNING
        await t.advance(1)
        assert t.result("nap", workflow_id).result == "slept 3600s"


async def test_a_call_that_is_not_answered_in_time_raises_in_the_workflow() -> None:
    app = _app()
    async with TestApp(app, agents=["impatient"]) as t:  # nobody serves "slow"
        workflow_id = await t.start("impatient", _task("c1"))
        await t.advance(31)
        assert t.result("impatient", workflow_id).result == "gave up"
        journal = t.journal("impatient", workflow_id)
        assert journal is not None and journal.steps[0].status is StepStatus.TIMED_OUT


async def test_an_answer_in_time_cancels_nothing_and_the_timer_fires_for_nothing() -> None:
    app = _app()
    async with TestApp(app) as t:
        workflow_id = await t.start("impatient", _task("c1"))
        assert t.result("impatient", workflow_id).result == "late answer"
        await t.advance(60)  # the deadline passes after the answer: the fired timer changes nothing
        endings = [
            e for e in t.sent(app.workflows["impatient"].events) if e.kind.value in ("COMPLETED", "FAILED")
        ]
        assert len(endings) == 1


async def test_a_signal_is_received_whether_it_comes_before_or_after_the_code_asks() -> None:
    app = _app()
    async with TestApp(app) as t:
        waiting = await t.start("approval", _task("c1"))
        await t.advance(3600)
        await t.signal(
            "approval", waiting, "approval", _done("c1", "ship it").model_copy(update={"agent": "ana"})
        )
        assert t.result("approval", waiting).result == "approved by ana: ship it"

        early = "early-case"
        await t.signal(
            "approval", early, "approval", _done("c2", "fine")
        )  # before the workflow exists: dropped
        await t.start("approval", _task("c2"), workflow_id=early)
        journal = t.journal("approval", early)
        assert journal is not None and journal.status is WorkflowStatus.RUNNING, "a signal needs a workflow"


async def test_a_signal_sent_before_the_code_asks_for_it_is_kept() -> None:
    app = App("timers")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def two_step(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        await wf.sleep(10)
        decision = await wf.signal("go", TaskCompleted)
        return _done(case.task_id, decision.result or "")

    async with TestApp(app) as t:
        workflow_id = await t.start("two_step", _task("c1"))
        await t.signal("two_step", workflow_id, "go", _done("c1", "went"))  # while it sleeps
        journal = t.journal("two_step", workflow_id)
        assert journal is not None and [s.name for s in journal.signals] == ["go"]
        await t.advance(10)
        assert t.result("two_step", workflow_id).result == "went"


async def test_an_unanswered_signal_times_out() -> None:
    app = _app()
    async with TestApp(app) as t:
        workflow_id = await t.start("approval", _task("c1"))
        await t.advance(24 * 3600)
        assert t.result("approval", workflow_id).result == "expired"


def _gather_app(at_least: int) -> App:
    app = App("gather")

    @app.specialist("fast", input=TaskRequested, output=TaskCompleted)
    async def fast(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return _done(task.task_id, f"fast {task.payload}")

    @app.specialist("slow", input=TaskRequested, output=TaskCompleted)
    async def slow(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return _done(task.task_id, f"slow {task.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def poll(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        asks = [wf.call("fast", _task(case.task_id, "a")), wf.call("slow", _task(case.task_id, "b"))]
        asks.append(wf.call("fast", _task(case.task_id, "c")))
        try:
            got = await wf.gather_within(*asks, timeout=60, at_least=at_least)
        except CallTimeout as timed_out:
            return _done(case.task_id, f"too few: {timed_out}")
        await wf.sleep(1)  # one more event after the gather: its outcome must replay the same
        return _done(case.task_id, f"{[v.result if v else None for v in got.values]} late={got.late}")

    return app


async def test_a_gather_with_a_deadline_returns_what_came_in_time_and_ignores_stragglers() -> None:
    app = _gather_app(at_least=2)
    async with TestApp(app) as t:
        in_time = await t.start("poll", _task("c1"))
        await t.advance(1)
        assert t.result("poll", in_time).result == "['fast a', 'slow b', 'fast c'] late=[]"

    async with TestApp(app, agents=["poll", "fast"]) as t:  # nobody serves "slow"
        workflow_id = await t.start("poll", _task("c2"))
        await t.advance(60)  # the deadline: "slow" is late
        journal = t.journal("poll", workflow_id)
        assert journal is not None
        [waiting] = [s for s in journal.steps if s.name == "slow"]
        late_answer = WorkflowEvent(
            kind=WorkflowEventKind.STEP_SUCCEEDED,
            workflow_id=workflow_id,
            name="slow",
            request_id=waiting.request_id,
            payload=t.payloads.encode(_done("c2", "slow b")),
            sender="slow",
            at=EPOCH,
        )
        await t.publish(app.workflows["poll"].events, late_answer, key=workflow_id)  # after the deadline
        await t.advance(1)
        assert t.result("poll", workflow_id).result == "['fast a', None, 'fast c'] late=[1]", (
            "the late answer is journaled but changes nothing the code decided"
        )


async def test_a_gather_that_gets_too_few_answers_in_time_raises() -> None:
    app = _gather_app(at_least=3)
    async with TestApp(app, agents=["poll", "fast"]) as t:
        workflow_id = await t.start("poll", _task("c1"))
        await t.advance(60)
        assert t.result("poll", workflow_id).result == (
            f"too few: gather in workflow {workflow_id}: 2 of 3 answered in time, 3 needed (1 late, 0 failed)"
        )
