"""Sagas on the in-memory twin: compensations registered after each step run newest first when the
workflow fails or is cancelled, each journaled, a failing one retried and then escalated, and an
unwinding resumed from the journal (a repeated event sends nothing twice)."""

from __future__ import annotations

import pytest

from streams import App, CompensationFailed, Context, Retry, TransientError, Workflow, WorkflowCancelled
from streams.errors import WorkflowFailed
from streams.events import StepKind, StepStatus, TaskCompleted, TaskRequested, TaskStatus, WorkflowStatus
from streams.testing import TestApp

pytestmark = pytest.mark.unit


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="case", payload=payload)


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="saga", status=TaskStatus.SUCCEEDED, result=result)


def _app(log: list[str], undo_failures: list[str]) -> App:
    """``book`` a flight, a hotel and a car; the car fails if the case says so. ``undo`` logs what it
    undid, failing (transiently) for payloads listed in ``undo_failures``, one failure each time."""
    app = App("saga")

    @app.specialist("book", input=TaskRequested, output=TaskCompleted)
    async def book(task: TaskRequested, ctx: Context) -> TaskCompleted:
        if task.payload == "car" and task.task_id == "no-cars":
            raise ValueError("no cars left")
        log.append(f"book {task.payload}")
        return _done(task.task_id, task.payload)

    @app.specialist("undo", input=TaskRequested, output=TaskCompleted)
    async def undo(task: TaskRequested, ctx: Context) -> TaskCompleted:
        if task.payload in undo_failures:
            undo_failures.remove(task.payload)
            raise TransientError(f"cannot reach {task.payload} desk")
        log.append(f"undo {task.payload}")
        return _done(task.task_id, f"undid {task.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def trip(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        for thing in ("flight", "hotel", "car"):
            await wf.call("book", _task(case.task_id, thing))
            wf.compensate("undo", _task(case.task_id, thing), retry=Retry(attempts=2, backoff=10, jitter=0))
        if case.payload == "wait":
            await wf.signal("go", TaskCompleted)
        return _done(case.task_id, "booked")

    return app


async def test_a_failed_third_step_runs_the_two_compensations_newest_first() -> None:
    log: list[str] = []
    app = _app(log, [])
    async with TestApp(app) as t:
        workflow_id = await t.start("trip", _task("no-cars"))
        with pytest.raises(WorkflowFailed, match="no cars left") as failed:
            t.result("trip", workflow_id)
        assert not isinstance(failed.value, CompensationFailed)
        assert log == ["book flight", "book hotel", "undo hotel", "undo flight"]
        journal = t.journal("trip", workflow_id)
        assert journal is not None and journal.status is WorkflowStatus.FAILED
        compensations = [s for s in journal.steps if s.kind is StepKind.COMPENSATE]
        assert [(s.name, s.status) for s in compensations] == [("undo", StepStatus.SUCCEEDED)] * 2
        assert compensations[1].finished_at is not None and compensations[0].started_at is not None


async def test_a_workflow_that_completes_runs_no_compensation() -> None:
    log: list[str] = []
    app = _app(log, [])
    async with TestApp(app) as t:
        workflow_id = await t.start("trip", _task("ok"))
        assert t.result("trip", workflow_id).result == "booked"
        assert not any(line.startswith("undo") for line in log)
        journal = t.journal("trip", workflow_id)
        assert journal is not None
        assert {s.status for s in journal.steps if s.kind is StepKind.COMPENSATE} == {StepStatus.REGISTERED}


async def test_a_cancelled_workflow_is_unwound_and_ends_cancelled() -> None:
    log: list[str] = []
    app = _app(log, [])
    async with TestApp(app) as t:
        workflow_id = await t.start("trip", _task("c1", "wait"))
        await t.cancel("trip", workflow_id, "changed plans")
        with pytest.raises(WorkflowCancelled, match="changed plans"):
            t.result("trip", workflow_id)
        assert log[-3:] == ["undo car", "undo hotel", "undo flight"]
        journal = t.journal("trip", workflow_id)
        assert journal is not None and journal.status is WorkflowStatus.CANCELLED


async def test_a_failing_compensation_is_retried_after_a_backoff_then_escalated() -> None:
    log: list[str] = []
    app = _app(log, ["hotel"])
    async with TestApp(app) as t:
        workflow_id = await t.start("trip", _task("no-cars"))
        journal = t.journal("trip", workflow_id)
        assert journal is not None and journal.status is WorkflowStatus.COMPENSATING
        assert journal.steps[3].status is StepStatus.RETRYING, "the hotel's undo waits for its backoff"
        assert "undo flight" not in log, "the older compensation waits for the newer"
        await t.advance(10)
        assert log[-2:] == ["undo hotel", "undo flight"]
        with pytest.raises(WorkflowFailed, match="no cars left"):
            t.result("trip", workflow_id)

    log.clear()
    app = _app(log, ["hotel", "hotel"])  # two failures: Retry(attempts=2) is spent
    async with TestApp(app) as t:
        workflow_id = await t.start("trip", _task("no-cars"))
        await t.advance(10)
        with pytest.raises(CompensationFailed, match=r"compensation undo \(step 3\) failed after 2 request"):
            t.result("trip", workflow_id)
        journal = t.journal("trip", workflow_id)
        assert journal is not None and journal.status is WorkflowStatus.FAILED_COMPENSATION
        assert "undo flight" not in log, "escalated: nothing further is guessed at"


async def test_repeated_events_during_unwinding_send_no_compensation_twice() -> None:
    log: list[str] = []
    app = _app(log, [])
    async with TestApp(app) as t:
        workflow_id = await t.start("trip", _task("no-cars"))
        events = app.workflows["trip"].events
        for message in t.messages(events):
            if message.value.kind.value not in ("COMPLETED", "FAILED"):
                await t.publish(
                    events, message.value, key=workflow_id, message_id=message.headers["message-id"]
                )
        undos = t.messages(app.specialists["undo"].requests)
        assert len(undos) == 2 and len({m.headers["message-id"] for m in undos}) == 2
        assert log.count("undo hotel") == 1 and log.count("undo flight") == 1
