"""Typed handoffs on the in-memory twin: a specialist passes a request on with typed context; the
caller gets the last answer, the chain is recorded, and cycles, long chains and bad context are refused
with HandoffRefused, with and without a workflow."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from streams import (
    App,
    CallFailed,
    Context,
    Handoff,
    HandoffRefused,
    Record,
    Retry,
    Settings,
    Workflow,
    WorkflowFailed,
)
from streams.cli import main
from streams.events import StepStatus, TaskCompleted, TaskRequested, TaskStatus, WorkflowEventKind
from streams.testing import TestApp
from tests.unit.test_workflow_cli import TwinChangelog

pytestmark = pytest.mark.unit

README = (Path(__file__).parents[2] / "README.md").read_text()


class Refund(Record):
    """A context record of the target's own type: what billing needs, not the customer's question."""

    __avro_schema__: ClassVar[dict[str, Any]] = {
        "type": "record",
        "name": "Refund",
        "namespace": "tests.handoffs",
        "fields": [{"name": "order", "type": "string"}, {"name": "cents", "type": "long"}],
    }

    order: str
    cents: int


def _task(task_id: str, payload: str = "") -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="desk", payload=payload)


def _done(task_id: str, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def _desk(settings: Settings | None = None) -> tuple[App, list[str]]:
    """``front`` hands refunds to ``billing`` (a Refund), anything with a route ("a,b,c" in the
    payload) along the route through ``hop-a``, ``hop-b``...; ``ran`` records every specialist run."""
    app = App("desk", settings or Settings())
    ran: list[str] = []

    def route(name: str, task: TaskRequested) -> TaskCompleted | Handoff:
        ran.append(name)
        hops = [h for h in task.payload.split(",") if h]
        if not hops:
            return _done(task.task_id, name, f"answered by {name}")
        rest = TaskRequested(task_id=task.task_id, capability=hops[0], payload=",".join(hops[1:]))
        return Handoff(to=hops[0], value=rest, reason=f"route says {hops[0]}")

    @app.specialist("front", input=TaskRequested, output=TaskCompleted, retry=Retry(attempts=3))
    async def front(task: TaskRequested, ctx: Context) -> TaskCompleted | Handoff:
        if task.payload.startswith("refund "):
            ran.append("front")
            order = task.payload.removeprefix("refund ")
            if order == "wrong-type":
                return Handoff(to="billing", value=task)
            if order == "bad-value":  # a valid Python int, but no Avro long: only the schema can tell
                return Handoff(to="billing", value=Refund(order="x", cents=2**64))
            return Handoff(to="billing", value=Refund(order=order, cents=1250), reason="a refund")
        return route("front", task)

    @app.specialist("billing", input=Refund, output=TaskCompleted)
    async def billing(refund: Refund, ctx: Context) -> TaskCompleted:
        ran.append("billing")
        return _done(refund.order, "billing", f"refunded {refund.cents} cents on {refund.order}")

    for name in ("hop-a", "hop-b", "hop-c", "hop-d"):

        @app.specialist(name, input=TaskRequested, output=TaskCompleted)
        async def hop(task: TaskRequested, ctx: Context, name: str = name) -> TaskCompleted | Handoff:
            return route(name, task)

    @app.specialist("other", input=TaskRequested, output=TaskRequested)
    async def other(task: TaskRequested, ctx: Context) -> TaskRequested:
        return task

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def case(task: TaskRequested, wf: Workflow) -> TaskCompleted:
        try:
            return await wf.call("front", task)
        except HandoffRefused as refused:
            return _done(task.task_id, "case", f"refused: {refused}")

    return app, ran


async def test_a_call_gets_the_last_specialists_output_with_typed_context() -> None:
    app, ran = _desk()
    async with TestApp(app) as t:
        answer = await t.call("front", _task("c1", "refund o-7"), correlation_id="case-1")
        assert answer == _done("o-7", "billing", "refunded 1250 cents on o-7")
        assert ran == ["front", "billing"]
        [forwarded] = t.messages(app.specialists["billing"].requests)
        assert forwarded.value == Refund(order="o-7", cents=1250)
        assert forwarded.headers["handoff-chain"] == "front,billing"
        assert forwarded.headers["handoff-limit"] == "5", "the default limit, set by the first handoff"
        assert forwarded.headers["handoff-reason"] == "a refund"
        assert forwarded.headers["correlation-id"] == "case-1"
        [request] = t.messages(app.specialists["front"].requests)
        assert forwarded.headers["reply-request"] == request.headers["message-id"]
        assert forwarded.headers["causation-id"] == request.headers["message-id"]
        [reply] = t.sent(app.replies_topic())
        assert reply.kind is WorkflowEventKind.STEP_SUCCEEDED
        assert (reply.name, reply.handoffs) == ("billing", ["front", "billing"])


async def test_a_handoff_keeps_the_priority_class_the_request_came_in_with() -> None:
    app, ran = _desk()
    ran.clear()
    async with TestApp(app) as t:
        answer = await t.call("front", _task("c2", "refund o-9"), priority="critical")
        assert answer.result == "refunded 1250 cents on o-9"
        billing = app.specialists["billing"]
        [forwarded] = t.messages(billing.requests_for("critical"))
        assert forwarded.value == Refund(order="o-9", cents=1250)
        assert t.messages(billing.requests) == [], "nothing on billing's normal lane"
        assert ran == ["front", "billing"]


async def test_a_chain_up_to_the_limit_passes_and_one_hop_more_is_refused() -> None:
    app, ran = _desk(Settings(streams_max_hops=3))
    async with TestApp(app) as t:
        answer = await t.call("front", _task("ok", "hop-a,hop-b,hop-c"))
        assert answer.result == "answered by hop-c", "three handoffs: at the limit"
        ran.clear()
        with pytest.raises(HandoffRefused) as refused:
            await t.call("front", _task("long", "hop-a,hop-b,hop-c,hop-d"))
        assert str(refused.value) == (
            "front -> hop-a -> hop-b -> hop-c failed after 1 attempt(s): HandoffRefused: handoff refused: "
            "front -> hop-a -> hop-b -> hop-c -> hop-d would take 4 handoffs, over the limit of 3"
        )
        assert ran == ["front", "hop-a", "hop-b", "hop-c"], "hop-d never got it"
        assert t.messages(app.specialists["hop-d"].requests) == []
        assert t.dead_letters("hop-c") == [], "the caller was told; nothing is left unanswered"


async def test_a_cycle_is_refused_and_not_retried() -> None:
    app, ran = _desk()
    async with TestApp(app) as t:
        with pytest.raises(
            HandoffRefused, match=r"handoff cycle: front -> hop-a -> hop-b -> hop-a \(hop-a has"
        ):
            await t.call("front", _task("loop", "hop-a,hop-b,hop-a"))
        assert ran == ["front", "hop-a", "hop-b"], "refused once, not retried"


async def test_context_that_does_not_fit_the_targets_input_is_refused_before_it_is_sent() -> None:
    app, ran = _desk()
    async with TestApp(app) as t:
        with pytest.raises(HandoffRefused, match="handoff refused: billing takes Refund, not TaskRequested"):
            await t.call("front", _task("c1", "refund wrong-type"))
        with pytest.raises(HandoffRefused, match="the context does not fit billing's input: value does not"):
            await t.call("front", _task("c2", "refund bad-value"))
        with pytest.raises(HandoffRefused, match="other answers with TaskRequested, but the caller of front"):
            await t.call("front", _task("c3", "other"))
        with pytest.raises(HandoffRefused, match="handed off to nobody, which is no capability of this app"):
            await t.call("front", _task("c4", "nobody"))
        assert t.messages(app.specialists["billing"].requests) == []
        assert ran.count("billing") == 0 and ran.count("front") == 4, "front tried once each: not retried"


async def test_refusals_without_a_caller_go_to_the_dead_letter_topic() -> None:
    app, _ = _desk(Settings(streams_max_hops=0))
    async with TestApp(app) as t:
        await t.publish(app.specialists["front"].requests, _task("c1", "refund o-1"))
        [letter] = t.dead_letters("front")
        assert letter.error_class == "streams.errors.HandoffRefused"
        assert "front -> billing would take 1 handoffs, over the limit of 0" in letter.reason


async def test_a_workflow_step_gets_the_last_answer_and_its_journal_the_chain() -> None:
    app, ran = _desk()
    async with TestApp(app) as t:
        done = await t.start("case", _task("c1", "refund o-9"))
        refused = await t.start("case", _task("c2", "hop-a,front"))
        assert t.result("case", done) == _done("o-9", "billing", "refunded 1250 cents on o-9")
        journal = t.journal("case", done)
        assert journal is not None
        [step] = journal.steps
        assert (step.name, step.status, step.handoffs) == (
            "front",
            StepStatus.SUCCEEDED,
            ["front", "billing"],
        )

        assert t.result("case", refused).result == (
            "refused: front -> hop-a failed after 1 attempt(s): HandoffRefused: handoff refused: handoff "
            "cycle: front -> hop-a -> front (front has had this request already)"
        ), "the workflow caught the typed failure"
        journal = t.journal("case", refused)
        assert journal is not None
        [step] = journal.steps
        assert (step.status, step.handoffs) == (StepStatus.FAILED, ["front", "hop-a"])
        assert step.error_class == "streams.errors.HandoffRefused" and step.error_kind == "FATAL"

        # Every event again, as a redelivery after a crash brings them: the replays decide the same.
        before, runs = t.journal("case", done), len(ran)
        events = app.workflows["case"].events
        for message in t.messages(events):
            if message.value.kind not in (WorkflowEventKind.COMPLETED, WorkflowEventKind.FAILED):
                await t.publish(
                    events, message.value, key=message.key, message_id=message.headers["message-id"]
                )
        assert t.journal("case", done) == before and len(ran) == runs, "nothing asked or recorded again"


async def test_an_uncaught_refusal_fails_the_workflow_with_its_reason() -> None:
    app = App("strict")

    @app.specialist("front", input=TaskRequested, output=TaskCompleted)
    async def front(task: TaskRequested, ctx: Context) -> Handoff:
        return Handoff(to="front", value=task)

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def case(task: TaskRequested, wf: Workflow) -> TaskCompleted:
        return await wf.call("front", task)

    async with TestApp(app) as t:
        workflow_id = await t.start("case", _task("c1"))
        with pytest.raises(WorkflowFailed, match=r"HandoffRefused: .*handoff cycle: front -> front"):
            t.result("case", workflow_id)
        with pytest.raises(CallFailed):  # a HandoffRefused is a CallFailed: old handlers still catch it
            await t.call("front", _task("c2"))


async def test_the_readme_handoff_example_runs_as_written() -> None:
    code = README.split("### Typed handoffs", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    example: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), example)  # our own README's example, run as written
    async with TestApp(example["app"]) as t:
        answer = await t.call("triage", _task("q1", "a refund for order 7"))
        assert (answer.agent, answer.result) == ("billing", "refund approved for a gold customer")
        case_id = await t.start("support", _task("q2", "a refund for order 8"))
        assert t.result("support", case_id).agent == "billing"
        journal = t.journal("support", case_id)
        assert journal is not None and journal.steps[0].handoffs == ["triage", "billing"]
        assert (await t.call("triage", _task("q3", "where is my parcel"))).agent == "triage"


def test_show_lists_each_steps_chain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app, _ = _desk()
    twin = TestApp(app)

    async def run() -> None:
        async with twin:
            await twin.start("case", _task("c1", "refund o-9"), workflow_id="c1")

    asyncio.run(run())
    changelog = TwinChangelog(twin)
    monkeypatch.setattr("streams.state_query.read_changelog", changelog.read)
    monkeypatch.setattr("streams.state_query.changelog_partitions", changelog.partitions_of)
    monkeypatch.setattr("streams.cli.workflow.registry", lambda config: twin.registry)
    monkeypatch.setattr(sys.modules[__name__], "desk_app", app, raising=False)

    assert main(["workflow", "show", f"{__name__}:desk_app", "case", "c1", "--json"]) == 0
    [step] = json.loads(capsys.readouterr().out)["steps"]
    assert (step["name"], step["handoffs"]) == ("front", ["front", "billing"])
    assert step["result"]["result"] == "refunded 1250 cents on o-9"
    assert main(["workflow", "show", f"{__name__}:desk_app", "case", "c1"]) == 0
    assert "front (handed off: billing)" in capsys.readouterr().out
