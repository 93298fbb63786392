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
