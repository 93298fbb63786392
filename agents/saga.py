"""A saga with compensations: book a flight, a hotel and a car for a trip; if a booking fails, undo
the ones made, newest first.

    streams run agents.saga:app                  # the trip workflow and the book/undo specialists
    streams workflow start agents.saga:app trip --wait \\
        --input '{"task_id": "t1", "capability": "trip", "payload": "Lisbon"}'          # all booked
    streams workflow start agents.saga:app trip --wait \\
        --input '{"task_id": "t2", "capability": "trip", "payload": "Reykjavik"}'       # no car there
    streams workflow show agents.saga:app trip ID   # each booking, the failure, each compensation

After each booking succeeds, the workflow registers its compensation (``wf.compensate``). When the
car cannot be booked (no cars in :data:`SOLD_OUT` destinations: a ``DataError``, not retried), the
error escapes the workflow, which turns ``COMPENSATING``: the engine sends ``undo`` for the hotel,
then for the flight, one at a time, each journaled and retried if it fails, and the run ends
``FAILED`` with the booking's error. A crash meanwhile resumes the unwinding from the journal, with
no compensation skipped or sent twice; a trip that completes never sends its compensations. The
specialists stand in for booking systems (a short sleep and a computed answer).
"""

from __future__ import annotations

import asyncio

from streams import App, Context, DataError, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

SOLD_OUT = {"Reykjavik"}  # destinations with no car to rent
LATENCY = 0.01


def _booking(case: TaskRequested, thing: str, capability: str) -> TaskRequested:
    return TaskRequested(
        task_id=f"{case.task_id}/{thing}",
        capability=capability,
        payload=thing,
        context={"destination": case.payload},  # handed over to the specialist with the request
    )


def build(name: str = "trips") -> App:
    app = App(name)

    @app.specialist("book", input=TaskRequested, output=TaskCompleted)
    async def book(request: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(LATENCY)  # the booking system is called here
        destination = request.context["destination"]
        if request.payload == "car" and destination in SOLD_OUT:
            raise DataError(f"no car available in {destination}")
        confirmation = f"{request.payload} in {destination}: {sum(request.task_id.encode()) % 9000 + 1000}"
        return TaskCompleted(
            task_id=request.task_id, agent="book", status=TaskStatus.SUCCEEDED, result=confirmation
        )

    @app.specialist("undo", input=TaskRequested, output=TaskCompleted)
    async def undo(request: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(LATENCY)  # the booking system's cancellation is called here
        result = f"cancelled {request.payload} in {request.context['destination']}"
        return TaskCompleted(
            task_id=request.task_id, agent="undo", status=TaskStatus.SUCCEEDED, result=result
        )

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def trip(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        booked = []
        for thing in ("flight", "hotel", "car"):
            confirmation = await wf.call("book", _booking(case, thing, "book"))
            wf.compensate("undo", _booking(case, thing, "undo"))
            booked.append(confirmation.result or "")
        return TaskCompleted(
            task_id=case.task_id, agent="trip", status=TaskStatus.SUCCEEDED, result="; ".join(booked)
        )

    return app


app = build()
