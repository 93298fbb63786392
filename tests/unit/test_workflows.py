"""Durable workflows on the in-memory twin: steps journaled, parallel calls, failures, replays that
repeat nothing, and code that changed under a running workflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams import App, CallFailed, ConfigError, Context, Retry, WorkflowFailed
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
from streams.workflows import Workflow
from tests._records import EPOCH

pytestmark = pytest.mark.unit


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="case", payload=payload)


def _done(task: TaskRequested, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task.task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def _app(calls: list[str]) -> App:
    """plan -> three researchers in parallel -> synthesise; ``calls`` records every specialist run."""
    app = App("wf")

    @app.specialist("plan", input=TaskRequested, output=TaskCompleted)
    async def plan(task: TaskRequested, ctx: Context) -> TaskCompleted:
        calls.append(f"plan:{task.task_id}")
        return _done(task, "plan", "a,b,c")

    @app.specialist("research", input=TaskRequested, output=TaskCompleted)
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        calls.append(f"research:{task.payload}")
        if task.payload == "boom":
            raise RuntimeError("no sources")
        return _done(task, "research", task.payload.upper())

    @app.specialist("synthesise", input=TaskRequested, output=TaskCompleted)
    async def synthesise(task: TaskRequested, ctx: Context) -> TaskCompleted:
        calls.append(f"synthesise:{task.payload}")
        return _done(task, "synthesise", f"report on {task.payload}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def triage(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        plan = await wf.call("plan", case)
        topics = (plan.result or "").split(",")
        steps = [wf.call("research", _task(f"{case.task_id}-{t}", t)) for t in topics]
        found = await wf.gather(*steps)
        summary = "+".join(f.result or "" for f in found)
        return await wf.call("synthesise", _task(case.task_id, summary))

    return app


async def test_a_workflow_runs_its_steps_once_each_and_returns_its_typed_output() -> None:
    calls: list[str] = []
    app = _app(calls)
    async with TestApp(app) as t:
        workflow_id = await t.start("triage", _task("case-1"))
        output = t.result("triage", workflow_id)
        assert output == _done(_task("case-1"), "synthesise", "report on A+B+C")
        assert sorted(calls) == sorted(
            ["plan:case-1", "research:a", "research:b", "research:c", "synthesise:A+B+C"]
        ), "every step ran exactly once, though the code ran again on every answer"
        journal = t.journal("triage", workflow_id)
        assert journal is not None and journal.status is WorkflowStatus.COMPLETED
        assert [(s.kind.value, s.name, s.status) for s in journal.steps] == [
            ("CALL", "plan", StepStatus.SUCCEEDED),
            ("CALL", "research", StepStatus.SUCCEEDED),
            ("CALL", "research", StepStatus.SUCCEEDED),
            ("CALL", "research", StepStatus.SUCCEEDED),
            ("CALL", "synthesise", StepStatus.SUCCEEDED),
        ]


async def test_parallel_steps_are_requested_together() -> None:
    calls: list[str] = []
    app = _app(calls)
    async with TestApp(app, agents=["triage", "plan"]) as t:  # researchers not running: answers never come
        workflow_id = await t.start("triage", _task("case-1"))
        requests = t.messages(app.specialists["research"].requests)
        assert sorted(m.value.payload for m in requests) == ["a", "b", "c"], (
            "all three asked before any answer"
        )
        assert {m.key for m in requests} == {workflow_id}
        assert {m.headers["correlation-id"] for m in requests} == {
            t.messages(app.workflows["triage"].events)[0].headers["correlation-id"]
        }


async def test_repeated_events_change_nothing() -> None:
    calls: list[str] = []
    app = _app(calls)
    async with TestApp(app) as t:
        workflow_id = await t.start("triage", _task("case-1"))
        events = [
            m
            for m in t.messages(app.workflows["triage"].events)
            if m.value.kind.value not in ("COMPLETED", "FAILED")
        ]
        for message in events:  # every input event again, as a redelivery after a crash would bring them
            await t.publish(
                app.workflows["triage"].events,
                message.value,
                key=workflow_id,
                message_id=message.headers["message-id"],
            )
        assert len(calls) == 5, "no step asked for again"
        endings = [
            m for m in t.sent(app.workflows["triage"].events) if m.kind.value in ("COMPLETED", "FAILED")
        ]
        assert len(endings) == 1


async def test_a_failed_step_raises_in_the_workflow_which_may_handle_it() -> None:
    app = App("wf")

    @app.specialist(
        "research", input=TaskRequested, output=TaskCompleted, retry=Retry(attempts=2, backoff=0.1)
    )
    async def research(task: TaskRequested, ctx: Context) -> TaskCompleted:
        raise RuntimeError("no sources")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def careful(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            return await wf.call("research", case)
        except CallFailed as failed:
            return _done(case, "careful", f"fallback after {failed}")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def careless(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        return await wf.call("research", case)

    async with TestApp(app) as t:
        output = t.result("careful", await t.start("careful", _task("c1")))
        assert output.result == "fallback after research failed after 2 attempt(s): RuntimeError: no sources"
        careless_id = await t.start("careless", _task("c2"))
        with pytest.raises(WorkflowFailed, match="CallFailed: research failed after 2 attempt"):
            t.result("careless", careless_id)
        journal = t.journal("careless", careless_id)
        assert journal is not None and journal.status is WorkflowStatus.FAILED


async def test_code_that_changed_under_a_running_workflow_stops_it_with_a_clear_error() -> None:
    app = App("wf")
    version = {"n": 1}

    @app.specialist("a", input=TaskRequested, output=TaskCompleted)
    async def a(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return _done(task, "a", "A")

    @app.specialist("b", input=TaskRequested, output=TaskCompleted)
    async def b(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return _done(task, "b", "B")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def evolving(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        first = await wf.call("a" if version["n"] == 1 else "b", case)
        return await wf.call("b", _task(first.result or ""))

    async with TestApp(app, agents=["evolving"]) as t:  # no specialist runs: the workflow waits on a
        workflow_id = await t.start("evolving", _task("c1"))
        journal = t.journal("evolving", workflow_id)
        assert journal is not None
        [waiting] = journal.steps
        version["n"] = 2  # a deploy changes the code while the workflow waits
        answer = WorkflowEvent(
            kind=WorkflowEventKind.STEP_SUCCEEDED,
            workflow_id=workflow_id,
            name="a",
            request_id=waiting.request_id,
            payload=t.payloads.encode(_done(_task("c1"), "a", "A")),
            sender="a",
            at=EPOCH,
        )
        await t.publish(app.workflows["evolving"].events, answer, key=workflow_id)
        with pytest.raises(
            WorkflowFailed,
            match=r"NonDeterminismError: workflow evolving .* asked for call 'b' at step 0, "
            r"but its journal holds call 'a' there",
        ):
            t.result("evolving", workflow_id)
        assert t.messages(app.specialists["b"].requests) == [], (
            "nothing asked for on a history that is not its own"
        )


async def test_journaled_values_are_the_same_on_every_replay() -> None:
    app = App("wf")
    seen: list[tuple[str, float, Any]] = []

    @app.specialist("echo", input=TaskRequested, output=TaskCompleted)
    async def echo(task: TaskRequested, ctx: Context) -> TaskCompleted:
        return _done(task, "echo", task.payload)

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def stamped(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        values = (wf.uuid(), wf.random(), wf.now())
        seen.append(values)
        await wf.call("echo", case)
        await wf.call("echo", case)
        return _done(case, "stamped", values[0])

    async with TestApp(app) as t:
        workflow_id = await t.start("stamped", _task("c1"))
        assert len(seen) == 3, "the code ran once per event"
        assert seen[0] == seen[1] == seen[2]
        assert t.result("stamped", workflow_id).result == seen[0][0]


async def test_bad_starts_and_unknown_names_say_what_is_wrong() -> None:
    calls: list[str] = []
    app = _app(calls)
    async with TestApp(app) as t:
        with pytest.raises(ConfigError, match="no workflow nope; workflows: triage"):
            await t.start("nope", _task("c1"))
        with pytest.raises(TypeError, match="workflow triage takes TaskRequested, not TaskCompleted"):
            await t.start("triage", _done(_task("c1"), "x", "y"))


README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


async def test_the_readme_workflow_example_runs_as_written() -> None:
    code = (
        README.split("## Specialists and durable workflows", 1)[1]
        .split("```python\n", 1)[1]
        .split("```", 1)[0]
    )
    example: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), example)  # our own README's example, run as written
    async with TestApp(example["app"]) as t:
        case_id = await t.start("triage", _task("case-1", "billing,outage"))
        journal = t.journal("triage", case_id)
        assert journal is not None and journal.status is WorkflowStatus.RUNNING, "waiting for approval"
        await t.signal("triage", case_id, "approval", _done(_task("case-1"), "ana", "approved"))
        assert t.result("triage", case_id).result == "approved: notes on billing; notes on outage"


def _family() -> App:
    app = App("family")

    @app.specialist("shout", input=TaskRequested, output=TaskCompleted)
    async def shout(task: TaskRequested, ctx: Context) -> TaskCompleted:
        if task.payload == "boom":
            raise ValueError("cannot shout that")
        return _done(task, "shout", task.payload.upper())

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def child(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        loud = await wf.call("shout", case)
        await wf.sleep(5)
        return _done(case, "child", f"{loud.result}!")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def parent(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        kids = [wf.child("child", _task(f"{case.task_id}-{word}", word)) for word in case.payload.split()]
        try:
            results = await wf.gather(*kids)
        except CallFailed as failed:
            return _done(case, "parent", f"a child failed: {failed}")
        return _done(case, "parent", " ".join(r.result or "" for r in results))

    return app


async def test_a_child_workflow_runs_durably_and_answers_its_parents_step() -> None:
    app = _family()
    async with TestApp(app) as t:
        parent_id = await t.start("parent", _task("p1", "hi there"))
        await t.advance(5)
        assert t.result("parent", parent_id).result == "HI! THERE!"
        children = {e.workflow_id for e in t.sent(app.workflows["child"].events) if e.kind.value == "STARTED"}
        assert children == {f"{parent_id}/0", f"{parent_id}/1"}, "child ids derive from the parent's steps"
        assert t.result("child", f"{parent_id}/0").result == "HI!"
        child_journal = t.journal("child", f"{parent_id}/1")
        assert child_journal is not None and child_journal.parent is not None
        assert child_journal.parent.workflow_id == parent_id


async def test_a_failed_child_raises_in_its_parent() -> None:
    app = _family()
    async with TestApp(app) as t:
        parent_id = await t.start("parent", _task("p1", "fine boom"))
        await t.advance(5)
        assert t.result("parent", parent_id).result == (
            "a child failed: child failed after 1 attempt(s): CallFailed: shout failed after 1 attempt(s): "
            "ValueError: cannot shout that"
        )
