"""agents/handoff_protocol.py on the in-memory twin: cases handed to billing or tech with typed context,
a context tech's schema refuses, a step timed out and retried, and the ticket closed when it all fails."""

from __future__ import annotations

import pytest

from agents.handoff_protocol import Incident, Refund, build
from streams import WorkflowFailed
from streams.events import StepKind, StepStatus, TaskRequested, WorkflowStatus
from streams.testing import TestApp

pytestmark = pytest.mark.unit


def _case(task_id: str, payload: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="support", payload=payload)


async def test_cases_are_answered_by_whoever_they_were_handed_to_with_typed_context() -> None:
    app = build()
    async with TestApp(app) as t:
        answers, chains = [], []
        for i, payload in enumerate(["refund order-17 12.50", "bug web login page is blank", "hours?"]):
            run = await t.start("support", _case(f"c{i}", payload))
            answers.append(t.result("support", run))
            journal = t.journal("support", run)
            assert journal is not None
            chains.append([s.handoffs for s in journal.steps if s.name == "front"])
        refunds = t.sent(app.specialists["billing"].requests)
        incidents = t.sent(app.specialists["tech"].requests)
        closed = t.sent(app.specialists["close-ticket"].requests)
    assert [(a.agent, a.result) for a in answers] == [
        ("billing", "T-1147: refund of 12.50 on order-17 approved"),
        ("tech", "T-1148: web: 'login page is blank' -> fix 86"),
        ("front", "T-1149: see the FAQ on 'hours?'"),
    ]
    assert refunds == [Refund(case_id="c0", order="order-17", cents=1250)]
    assert incidents == [Incident(case_id="c1", product="web", symptom="login page is blank")]
    assert chains == [[["front", "billing"]], [["front", "tech"]], [[]]]
    assert closed == [], "a case answered keeps its ticket"


async def test_a_context_tech_cannot_take_is_refused_not_retried_and_the_ticket_closed() -> None:
    app = build()
    async with TestApp(app) as t:
        run = await t.start("support", _case("c1", "bug fax no dial tone"))
        with pytest.raises(WorkflowFailed, match=r"HandoffRefused.*does not fit tech's input.*'fax'"):
            t.result("support", run)
        journal = t.journal("support", run)
        incidents = t.sent(app.specialists["tech"].requests)
        closed = t.sent(app.specialists["close-ticket"].requests)
    assert incidents == [], "refused before anything was sent"
    assert [(c.task_id, c.payload) for c in closed] == [("c1", "T-1148")]
    assert journal is not None and journal.status is WorkflowStatus.FAILED
    assert [(s.kind, s.name, s.status, s.tries) for s in journal.steps] == [
        (StepKind.CALL, "open-ticket", StepStatus.SUCCEEDED, 1),
        (StepKind.COMPENSATE, "close-ticket", StepStatus.SUCCEEDED, 1),
        (StepKind.CALL, "front", StepStatus.FAILED, 1),
    ]


async def test_a_hanging_target_times_the_step_out_twice_and_the_ticket_is_closed() -> None:
    app = build()
    # tech never answers here (on the broker it hangs for longer than the step's timeout).
    async with TestApp(app, [agent for agent in app.agents if agent != "tech"]) as t:
        run = await t.start("support", _case("c1", "bug api 500 on /orders"))
        await t.advance(1.9)
        assert len(t.sent(app.specialists["front"].requests)) == 1, "not timed out yet"
        for _ in range(3):
            await t.advance(2)
        with pytest.raises(WorkflowFailed, match=r"CallTimeout: front did not answer .* \(2 requests\)"):
            t.result("support", run)
        journal = t.journal("support", run)
        fronts = t.sent(app.specialists["front"].requests)
        incidents = t.sent(app.specialists["tech"].requests)
        closed = t.sent(app.specialists["close-ticket"].requests)
    assert len(fronts) == 2 and len(incidents) == 2, "the retry asked front again, which handed off again"
    assert [(c.task_id, c.payload) for c in closed] == [("c1", "T-1148")]
    assert journal is not None and journal.status is WorkflowStatus.FAILED
    [step] = [s for s in journal.steps if s.name == "front"]
    assert (step.status, step.tries) == (StepStatus.TIMED_OUT, 2)
