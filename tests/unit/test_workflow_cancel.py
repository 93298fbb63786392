"""Cancelling workflows on the in-memory twin: the journal ends CANCELLED, the end is reported so
waiters wake, late answers and timers change nothing, and an ended workflow stays as it ended."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams import App, Context, Workflow, WorkflowCancelled, WorkflowFailed
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
from streams.workflows.journal import CANCELLED_CLASS

pytestmark = pytest.mark.unit


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="case", payload=payload)


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="wf", status=TaskStatus.SUCCEEDED, result=result)


def _app(calls: list[str]) -> App:
    app = App("cancel")

    @app.specialist("work", input=TaskRequested, output=TaskCompleted)
    async def work(task: TaskRequested, ctx: Context) -> TaskCompleted:
        calls.append(task.payload)
        return _done(task.task_id, f"did {task.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def approval(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        decision = await wf.signal("approval", TaskCompleted, timeout=timedelta(hours=24))
        return _done(case.task_id, f"approved: {decision.result}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def chain(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        first = await wf.call("work", _task(case.task_id, "first"))
        return await wf.call("work", _task(case.task_id, f"after {first.result}"))

    return app


def _events(t: TestApp, workflow: str, workflow_id: str) -> list[WorkflowEvent]:
    topic = t.app.workflows[workflow].events
    return [e for e in t.sent(topic) if e.workflow_id == workflow_id]


async def test_a_cancelled_workflow_ends_cancelled_and_its_waiters_are_told_why() -> None:
    async with TestApp(_app([])) as t:
        workflow_id = await t.start("approval", _task("c1"))
        await t.cancel("approval", workflow_id, "customer withdrew")

        journal = t.journal("approval", workflow_id)
        assert journal is not None
        assert journal.status is WorkflowStatus.CANCELLED
        assert journal.error == "customer withdrew"
        assert [s.status for s in journal.steps] == [StepStatus.PENDING], "what it waited for stays visible"
        with pytest.raises(WorkflowCancelled, match="cancelled: customer withdrew") as raised:
            t.result("approval", workflow_id)
        assert raised.value.reason == "customer withdrew"
        assert isinstance(raised.value, WorkflowFailed), "code catching failures catches cancellations"

        request, report = _events(t, "approval", workflow_id)[1:]
        assert (request.kind, request.sender) == (WorkflowEventKind.CANCELLED, "test")
        assert report.kind is WorkflowEventKind.FAILED, "waiters for an end wake on the report"
        assert report.error_class == CANCELLED_CLASS
        assert report.sender == t.app.agents["approval"].name, "the engine reports, not the client"


async def test_a_signal_or_a_timer_after_the_cancel_changes_nothing() -> None:
    async with TestApp(_app([])) as t:
        workflow_id = await t.start("approval", _task("c1"))
        await t.cancel("approval", workflow_id, "no longer needed")
        before = t.journal("approval", workflow_id)

        await t.signal("approval", workflow_id, "approval", _done("c1", "yes"))
        await t.advance(timedelta(hours=25).total_seconds())  # past the signal's deadline
        await t.cancel("approval", workflow_id, "again")

        assert t.journal("approval", workflow_id) == before
        reports = [e for e in _events(t, "approval", workflow_id) if e.kind is WorkflowEventKind.FAILED]
        assert len(reports) == 1, "the end is reported once"


async def test_late_answers_to_the_steps_of_a_cancelled_workflow_are_ignored() -> None:
    calls: list[str] = []
    app = _app(calls)
    # The specialist does not run yet, so the first call is still waiting when the cancel comes.
    async with TestApp(app, agents=["chain"]) as t:
        workflow_id = await t.start("chain", _task("c1"))
        await t.cancel("chain", workflow_id, "stop")
        pending = t.journal("chain", workflow_id)
        assert pending is not None and pending.steps[0].status is StepStatus.PENDING
        answer = WorkflowEvent(
            kind=WorkflowEventKind.STEP_SUCCEEDED,
            workflow_id=workflow_id,
            name="work",
            request_id=pending.steps[0].request_id,
            payload=t.payloads.encode(_done("c1", "first")),
            sender="cancel.work",
            at=pending.updated_at,
        )
        await t.publish(app.workflows["chain"].events, answer, key=workflow_id)

        assert t.journal("chain", workflow_id) == pending, "the answer came after the end"
        requests = t.sent(app.specialists["work"].requests)
        assert [r.payload for r in requests] == ["first"], "the code did not go on to its next step"
        with pytest.raises(WorkflowCancelled):
            t.result("chain", workflow_id)


async def test_cancelling_an_ended_or_unknown_workflow_changes_nothing() -> None:
    calls: list[str] = []
    async with TestApp(_app(calls)) as t:
        workflow_id = await t.start("chain", _task("c1"))
        output = t.result("chain", workflow_id)
        ended = t.journal("chain", workflow_id)
        assert ended is not None and ended.status is WorkflowStatus.COMPLETED

        await t.cancel("chain", workflow_id, "too late")
        await t.cancel("chain", "no-such-id")

        assert t.journal("chain", workflow_id) == ended
        assert t.result("chain", workflow_id) == output
        assert t.journal("chain", "no-such-id") is None
        assert calls == ["first", "after did first"]
