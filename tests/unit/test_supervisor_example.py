"""agents/supervisor.py on the in-memory twin: the supervisor workflow end to end."""

from __future__ import annotations

import pytest

from agents.supervisor import build
from streams.events import TaskRequested
from streams.testing import TestApp

pytestmark = pytest.mark.unit


async def test_a_case_is_planned_researched_in_parallel_and_synthesised() -> None:
    app = build()
    async with TestApp(app) as t:
        case = TaskRequested(task_id="case-1", capability="triage", payload="payments are failing in EU")
        case_id = await t.start("triage", case)
        report = t.result("triage", case_id)
        assert report.result == "report: payments: 8 findings; failing: 7 findings"
        assert t.stats("research").processed == 2
        journal = t.journal("triage", case_id)
        assert journal is not None
        assert [step.name for step in journal.steps] == ["plan", "research", "research", "synthesise"]


async def test_each_planned_subtask_is_delegated_to_the_capability_it_needs() -> None:
    app = build()
    async with TestApp(app) as t:
        case = TaskRequested(task_id="case-2", capability="triage", payload="GDPR breach latency")
        case_id = await t.start("triage", case)
        report = t.result("triage", case_id)
        journal = t.journal("triage", case_id)
        served = {
            capability: t.stats(capability).processed for capability in ("research", "legal", "analytics")
        }
    assert report.result == "report: GDPR: 1 obligations; breach: 6 findings; latency: up 21%"
    assert served == {"research": 1, "legal": 1, "analytics": 1}
    assert journal is not None
    assert [step.name for step in journal.steps] == ["plan", "legal", "research", "analytics", "synthesise"]
