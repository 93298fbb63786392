"""Deadlines on the in-memory twin, on its fake clock: a request carries its deadline in a header, a
specialist never starts one that has passed (dead-lettered, "deadline passed"), the deadline travels
on with what a handler sends, and a workflow's deadline bounds each of its steps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams import App, CallTimeout, Context, Workflow
from streams import headers as hdr
from streams.events import StepStatus, TaskCompleted, TaskRequested, TaskStatus
from streams.testing import FakeClock, TestApp

pytestmark = pytest.mark.unit


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="case", payload=payload)


def _done(task_id: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent="wf", status=TaskStatus.SUCCEEDED, result=result)


def _app(clock: FakeClock, handled: list[str]) -> App:
    app = App("deadlines")
    forwarded = app.topic("deadlines.forwarded", value=TaskRequested)

    @app.specialist("slow", input=TaskRequested, output=TaskCompleted)
    async def slow(task: TaskRequested, ctx: Context) -> TaskCompleted:
        handled.append(task.payload)
        await clock.sleep(float(task.payload or 0))  # the work takes this long, by the fake clock
        await ctx.send(forwarded, task)
        return _done(task.task_id, f"did {task.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def two(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        # Both requests are queued together under the workflow's key: the second waits for the first.
        first, second = (
            wf.call("slow", _task("a", "10"), timeout=60),
            wf.call("slow", _task("b", "1"), timeout=5),
        )
        done = (await first).result or ""
        try:
            return _done(case.task_id, f"{done}, {(await second).result}")
        except CallTimeout:
            return _done(case.task_id, f"{done}, b timed out")

    @app.workflow(input=TaskRequested, output=TaskCompleted, deadline=timedelta(seconds=30))
    async def bounded(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        await wf.sleep(timedelta(seconds=40))
        try:
            return await wf.call("slow", _task("late", "0"))
        except CallTimeout:
            return _done(case.task_id, "past its deadline")

    return app


async def test_a_request_whose_deadline_passed_while_queued_never_starts() -> None:
    clock, handled = FakeClock(), []
    app = _app(clock, handled)
    async with TestApp(app, clock=clock) as t:
        workflow_id = await t.start("two", _task("c1"))
        assert t.result("two", workflow_id).result == "did 10, b timed out"
        assert handled == ["10"], "the second request reached its specialist 10 s in, 5 s past its deadline"
        [letter] = t.dead_letters("slow")
        assert letter.reason.startswith("deadline passed")
        assert letter.error_class == "streams.errors.DeadlinePassed"
        assert t.stats("slow").expired == 1
        journal = t.journal("two", workflow_id)
        assert journal is not None and journal.steps[1].status is StepStatus.TIMED_OUT


async def test_the_deadline_travels_in_a_header_to_every_hop() -> None:
    clock, handled = FakeClock(), []
    app = _app(clock, handled)
    async with TestApp(app, clock=clock) as t:
        started_ms = clock.millis()
        await t.start("two", _task("c1"))
        [request, second] = t.messages(app.specialists["slow"].requests)
        assert int(request.headers[hdr.DEADLINE]) == started_ms + 60_000
        assert int(second.headers[hdr.DEADLINE]) == started_ms + 5_000
        [forwarded] = t.messages(app.topics["deadlines.forwarded"])
        assert forwarded.headers[hdr.DEADLINE] == request.headers[hdr.DEADLINE], "carried on by ctx.send"
        replies = [
            m for m in t.messages(app.workflows["two"].events) if m.value.kind.value == "STEP_SUCCEEDED"
        ]
        assert replies and all(hdr.DEADLINE in m.headers for m in replies)
        endings = [m for m in t.messages(app.workflows["two"].events) if m.value.kind.value == "COMPLETED"]
        assert hdr.DEADLINE not in endings[0].headers, "the engine's own sends carry no answer's deadline"


async def test_a_call_with_an_expired_deadline_is_dead_lettered_and_the_caller_times_out() -> None:
    clock, handled = FakeClock(), []
    app = _app(clock, handled)
    async with TestApp(app, clock=clock) as t:
        assert (await t.call("slow", _task("t1", "0"), timeout=1)).result == "did 0"
        with pytest.raises(CallTimeout):
            await t.call("slow", _task("t2", "0"), timeout=0)
        assert handled == ["0"]
        assert [letter.reason.split(" ")[:2] for letter in t.dead_letters("slow")] == [["deadline", "passed"]]


async def test_a_workflow_deadline_bounds_its_steps_and_the_code_may_handle_it() -> None:
    clock, handled = FakeClock(), []
    app = _app(clock, handled)
    async with TestApp(app, clock=clock) as t:
        workflow_id = await t.start("bounded", _task("c1"))
        journal = t.journal("bounded", workflow_id)
        assert journal is not None and journal.deadline is not None
        assert int(journal.deadline.timestamp()) == int(journal.started_at.timestamp()) + 30
        await t.advance(40)
        assert t.result("bounded", workflow_id).result == "past its deadline"
        assert handled == [] and t.sent(app.specialists["slow"].requests) == [], "no request sent past it"
