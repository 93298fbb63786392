"""agents/saga.py on the in-memory twin: bookings undone newest first when one fails."""

from __future__ import annotations

import pytest

from agents.saga import build
from streams import WorkflowFailed
from streams.events import StepKind, StepStatus, TaskRequested, WorkflowStatus
from streams.testing import TestApp

pytestmark = pytest.mark.unit


async def test_a_trip_that_books_everything_sends_no_compensation() -> None:
    app = build()
    async with TestApp(app) as t:
        trip = await t.start("trip", TaskRequested(task_id="t1", capability="trip", payload="Lisbon"))
        booked = t.result("trip", trip)
        undone = t.sent(app.specialists["undo"].requests)
        journal = t.journal("trip", trip)
    assert booked.result.startswith("flight in Lisbon: ") and "; car in Lisbon: " in booked.result
    assert undone == []
    assert journal is not None
    assert [s.status for s in journal.steps if s.kind is StepKind.COMPENSATE] == [StepStatus.REGISTERED] * 3


async def test_a_failed_booking_undoes_the_ones_made_newest_first_and_fails_the_trip() -> None:
    app = build()
    async with TestApp(app) as t:
        trip = await t.start("trip", TaskRequested(task_id="t2", capability="trip", payload="Reykjavik"))
        with pytest.raises(WorkflowFailed, match="no car available in Reykjavik"):
            t.result("trip", trip)
        undone = t.sent(app.specialists["undo"].requests)
        journal = t.journal("trip", trip)
    assert [(u.payload, u.context["destination"]) for u in undone] == [
        ("hotel", "Reykjavik"),
        ("flight", "Reykjavik"),
    ]
    assert journal is not None and journal.status is WorkflowStatus.FAILED
    assert [(s.kind, s.name, s.status) for s in journal.steps] == [
        (StepKind.CALL, "book", StepStatus.SUCCEEDED),
        (StepKind.COMPENSATE, "undo", StepStatus.SUCCEEDED),
        (StepKind.CALL, "book", StepStatus.SUCCEEDED),
        (StepKind.COMPENSATE, "undo", StepStatus.SUCCEEDED),
        (StepKind.CALL, "book", StepStatus.FAILED),
    ]
