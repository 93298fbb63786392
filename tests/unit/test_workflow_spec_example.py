"""agents/workflow_spec.py on the in-memory twin: a plan as data, run by the generic workflow."""

from __future__ import annotations

import json

import pytest

from agents.workflow_spec import StepSpec, WorkflowSpec, build
from streams import WorkflowFailed
from streams.events import StepKind, TaskRequested
from streams.testing import TestApp

pytestmark = pytest.mark.unit


async def test_a_planned_spec_runs_its_steps_by_their_dependencies_and_conditions() -> None:
    app = build()
    async with TestApp(app) as t:
        urgent = await t.start(
            "planned", TaskRequested(task_id="c1", capability="planned", payload="checkout outage")
        )
        routine = await t.start(
            "planned", TaskRequested(task_id="c2", capability="planned", payload="slow search")
        )
        ran = json.loads(t.result("planned", urgent).result)
        skipped = json.loads(t.result("planned", routine).result)
    assert ran == {
        "fetch": "2 records about checkout outage",
        "classify": "urgent",
        "escalate": "paged on-call: checkout outage",
        "summarise": "summary: 2 records about checkout outage, urgent",
    }
    assert skipped["classify"] == "routine" and skipped["escalate"] is None, "its condition is false"
    assert skipped["summarise"] == "summary: 2 records about slow search, routine"


async def test_a_step_is_retried_as_its_spec_says_then_times_out() -> None:
    app = build()
    spec = WorkflowSpec(
        spec_id="s1",
        steps=[
            StepSpec(name="fetch", capability="fetch", input="x", timeout_s=5, attempts=2),
            StepSpec(name="summarise", capability="summarise", input="{fetch}", depends_on=["fetch"]),
        ],
    )
    async with TestApp(app, agents=["execute"]) as t:  # no specialist runs: nothing answers
        run = await t.start("execute", spec)
        for _ in range(4):
            await t.advance(5)  # the first try's timeout, the backoff, the second try's timeout
        with pytest.raises(
            WorkflowFailed, match=r"CallTimeout: fetch did not answer .* in time \(2 requests\)"
        ):
            t.result("execute", run)
        journal = t.journal("execute", run)
    assert journal is not None
    [fetch] = [step for step in journal.steps if step.kind is StepKind.CALL]
    assert (fetch.name, fetch.tries) == ("fetch", 2)


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        (
            [
                StepSpec(name="a", capability="fetch", depends_on=["b"]),
                StepSpec(name="b", capability="fetch", depends_on=["a"]),
            ],
            "spec bad: steps depend on each other in a cycle",
        ),
        ([StepSpec(name="a", capability="fetch", depends_on=["z"])], "spec bad: step a depends on unknown z"),
        ([StepSpec(name="a", capability="translate")], "spec bad: step a needs unknown capability translate"),
        (
            [StepSpec(name="a", capability="fetch", when="b == x")],
            "step a depends on unknown b (in its condition",
        ),
        (
            [StepSpec(name="a", capability="fetch", when="a is x")],
            "condition 'a is x': write 'STEP == VALUE'",
        ),
    ],
)
async def test_a_bad_spec_fails_the_run_saying_why_before_any_step_is_asked(
    steps: list[StepSpec], reason: str
) -> None:
    app = build()
    async with TestApp(app) as t:
        run = await t.start("execute", WorkflowSpec(spec_id="bad", steps=steps))
        with pytest.raises(WorkflowFailed) as failed:
            t.result("execute", run)
        journal = t.journal("execute", run)
    assert reason in str(failed.value)
    assert journal is not None and journal.steps == []
