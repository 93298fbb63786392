"""Error classification and per-step retries on the in-memory twin, on its fake clock: a specialist
classes its errors (by type or with a classifier), retries transient ones in-process, and a workflow
step with ``retry=`` is asked again, durably, after a backoff timer."""

from __future__ import annotations

import pytest

from streams import (
    App,
    CallFailed,
    CallTimeout,
    Context,
    DataError,
    ErrorKind,
    ResourceError,
    Retry,
    TransientError,
    Workflow,
)
from streams.errors import error_kind
from streams.events import StepStatus, TaskCompleted, TaskRequested, TaskStatus, WorkflowStatus
from streams.testing import TestApp

pytestmark = pytest.mark.unit


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="case", payload=payload)


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="wf", status=TaskStatus.SUCCEEDED, result=result)


def _app(failures: list[BaseException], seen: list[str]) -> App:
    """``flaky`` raises the errors in ``failures`` one per request, then answers; no in-process
    retries, so every retry below is the workflow's own."""
    app = App("retries")

    @app.specialist("flaky", input=TaskRequested, output=TaskCompleted)
    async def flaky(task: TaskRequested, ctx: Context) -> TaskCompleted:
        seen.append(ctx.message_id)
        if failures:
            raise failures.pop(0)
        return _done(task.task_id, "finally")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def patient(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            return await wf.call(
                "flaky", case, retry=Retry(attempts=3, backoff=10, max_backoff=600, jitter=0)
            )
        except CallFailed as exc:
            return _done(case.task_id, f"gave up: {exc.remote_kind}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def timely(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            return await wf.call("flaky", case, timeout=5, retry=Retry(attempts=2, backoff=10, jitter=0))
        except CallTimeout:
            return _done(case.task_id, "timed out twice")

    return app


def test_errors_are_classed_by_type_and_retry_policies_follow_the_class() -> None:
    assert error_kind(TransientError("blip")) is ErrorKind.TRANSIENT
    assert error_kind(ResourceError("quota")) is ErrorKind.RESOURCE
    assert error_kind(DataError("bad")) is ErrorKind.DATA
    assert error_kind(RuntimeError("unknown")) is ErrorKind.TRANSIENT, "unknown errors retry as before"
    assert error_kind(CallFailed("x", capability="c", error_class=None, error_kind="DATA")) is ErrorKind.DATA
    retry = Retry(attempts=5, backoff=1, jitter=0)
    assert retry.should_retry(TransientError("blip"), 1)
    assert retry.should_retry(ResourceError("quota"), 1)
    assert not retry.should_retry(DataError("bad"), 1), "trying a bad input again cannot help"
    assert retry.delay(2, ErrorKind.RESOURCE) == 4 * retry.delay(2, ErrorKind.TRANSIENT)
    classified = Retry(attempts=5, classify=lambda e: ErrorKind.DATA if isinstance(e, KeyError) else None)
    assert not classified.should_retry(KeyError("field"), 1)
    assert classified.should_retry(RuntimeError("else"), 1), "None leaves it to the default"


async def test_a_specialist_retries_transient_errors_and_not_data_errors() -> None:
    app = App("classed")
    calls: list[str] = []

    @app.specialist(
        "parse",
        input=TaskRequested,
        output=TaskCompleted,
        retry=Retry(
            attempts=4,
            backoff=1,
            jitter=0,
            classify=lambda e: ErrorKind.DATA if isinstance(e, KeyError) else None,
        ),
    )
    async def parse(task: TaskRequested, ctx: Context) -> TaskCompleted:
        calls.append(task.payload)
        if task.payload == "bad" or len([c for c in calls if c == task.payload]) < 3:
            raise KeyError("no field") if task.payload == "bad" else TransientError("blip")
        return _done(task.task_id, "parsed")

    async with TestApp(app) as t:
        assert (await t.call("parse", _task("t1", "good"))).result == "parsed"
        assert calls.count("good") == 3, "two transient failures retried in-process"
        with pytest.raises(CallFailed) as failed:
            await t.call("parse", _task("t2", "bad"))
        assert calls.count("bad") == 1, "a data error is not retried"
        assert failed.value.remote_kind is ErrorKind.DATA


async def test_a_failed_step_is_asked_again_after_a_durable_backoff_until_it_succeeds() -> None:
    seen: list[str] = []
    app = _app([TransientError("blip"), ResourceError("quota")], seen)
    async with TestApp(app) as t:
        workflow_id = await t.start("patient", _task("c1"))
        journal = t.journal("patient", workflow_id)
        assert journal is not None and journal.status is WorkflowStatus.RUNNING
        [step] = journal.steps
        assert step.status is StepStatus.RETRYING and step.tries == 1 and step.error_kind == "TRANSIENT"
        assert len(seen) == 1, "not asked again before the backoff is over"
        await t.advance(9)
        assert len(seen) == 1
        await t.advance(1)  # 10 s: the first backoff
        assert len(seen) == 2, "asked again once the backoff timer fired"
        step = t.journal("patient", workflow_id).steps[0]  # type: ignore[union-attr]
        assert step.status is StepStatus.RETRYING and step.error_kind == "RESOURCE"
        await t.advance(79)  # a resource error waits 4x longer: 10 * 2 * 4 = 80 s
        assert len(seen) == 2
        await t.advance(1)
        assert t.result("patient", workflow_id).result == "finally"
        assert len(set(seen)) == 3, "each try is a new request with its own id"
        step = t.journal("patient", workflow_id).steps[0]  # type: ignore[union-attr]
        assert step.status is StepStatus.SUCCEEDED and step.tries == 3


async def test_a_data_error_reaches_the_code_at_once_and_tries_run_out() -> None:
    seen: list[str] = []
    app = _app([DataError("malformed")], seen)
    async with TestApp(app) as t:
        workflow_id = await t.start("patient", _task("c1"))
        assert t.result("patient", workflow_id).result == "gave up: DATA"
        assert len(seen) == 1
    seen.clear()
    app = _app([TransientError("1"), TransientError("2"), TransientError("3")], seen)
    async with TestApp(app) as t:
        workflow_id = await t.start("patient", _task("c1"))
        await t.advance(10)
        await t.advance(20)
        assert t.result("patient", workflow_id).result == "gave up: TRANSIENT"
        assert len(seen) == 3, "three requests in all, as Retry(attempts=3) says"


async def test_a_timed_out_step_is_retried_and_then_times_out_for_the_code() -> None:
    app = _app([], [])
    async with TestApp(app, agents=["timely"]) as t:  # nobody answers "flaky"
        workflow_id = await t.start("timely", _task("c1"))
        await t.advance(5)
        step = t.journal("timely", workflow_id).steps[0]  # type: ignore[union-attr]
        assert step.status is StepStatus.RETRYING
        await t.advance(10)
        await t.advance(5)
        assert t.result("timely", workflow_id).result == "timed out twice"
        requests = t.messages(app.specialists["flaky"].requests)
        assert len({m.headers["message-id"] for m in requests}) == 2
