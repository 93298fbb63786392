"""A handoff protocol: a support desk whose front line hands a case to billing or tech with typed
context, the context checked against the target's schema, the step timed out and retried, and what
was done rolled back when the case ultimately cannot be handled.

    streams run agents.handoff_protocol:app      # the support workflow and its five specialists
    streams workflow start agents.handoff_protocol:app support --wait \\
        --input '{"task_id": "c1", "capability": "support", "payload": "refund order-17 12.50"}'
    # other payloads: "bug web login page is blank" (tech answers), "bug fax no dial tone" (context
    # refused: tech has no such product), "bug api 500 on /orders" (tech hangs: timed out twice)
    streams workflow show agents.handoff_protocol:app support ID   # the ticket, the handoff chain, the undo

The ``support`` workflow opens a ticket and registers its rollback (``wf.compensate``: close it),
then asks ``front``. ``front`` answers general questions itself; a refund it hands to ``billing``
with a :class:`Refund`, a bug to ``tech`` with an :class:`Incident`: each a record of the target's
own input type, built from the case (``Handoff(to=, value=, reason=)``). The caller gets the last
answer of the chain, which the journal records. Before anything is sent, the handoff is checked: an
``Incident`` whose ``product`` is none of the symbols of tech's schema is refused
(``HandoffRefused``, classed fatal, so never retried). ``front``'s step has a 2-s timeout and one
durable retry, which asks ``front`` again (and it hands off again); tech hangs on products in
:data:`OUTAGE`, so both tries time out (``CallTimeout``). Either way the error escapes the workflow:
the ticket is closed and the run ends ``FAILED`` with the error. The specialists stand in for model
calls and the helpdesk (a short sleep and a computed answer).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from streams import App, Context, Handoff, Record, Retry, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

LATENCY = 0.01  # seconds a stand-in model call takes
OUTAGE = {"api"}  # products whose incident tracker is down: tech hangs on them
HANG = 5.0  # how long tech hangs, past the step's timeout
STEP_TIMEOUT = 2.0


class Refund(Record):
    """What billing needs of a case: not the customer's words, the order and the amount."""

    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "Refund",
        "namespace": "agents.handoff_protocol",
        "fields": [
            {"name": "case_id", "type": "string"},
            {"name": "order", "type": "string"},
            {"name": "cents", "type": "long"},
        ],
    }

    case_id: str
    order: str
    cents: int


class Incident(Record):
    """What tech needs: the product, one of those it supports (its schema's enum), and the symptom."""

    __avro_schema__: ClassVar[dict[str, object]] = {
        "type": "record",
        "name": "Incident",
        "namespace": "agents.handoff_protocol",
        "fields": [
            {"name": "case_id", "type": "string"},
            {
                "name": "product",
                "type": {"type": "enum", "name": "Product", "symbols": ["web", "mobile", "api"]},
            },
            {"name": "symptom", "type": "string"},
        ],
    }

    case_id: str
    product: str  # whatever front read; tech's schema decides whether it is a product
    symptom: str


def _done(case_id: str, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=case_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def build(name: str = "support") -> App:
    """The app, named ``name`` (tests run it under a name of their own)."""
    app = App(name)

    @app.specialist("front", input=TaskRequested, output=TaskCompleted)
    async def front(case: TaskRequested, ctx: Context) -> TaskCompleted | Handoff:
        await asyncio.sleep(LATENCY)  # a real model client reads the case here (and in each specialist)
        kind, _, rest = case.payload.partition(" ")
        if kind == "refund":
            order, _, amount = rest.partition(" ")
            refund = Refund(case_id=case.task_id, order=order, cents=round(float(amount or 0) * 100))
            return Handoff(to="billing", value=refund, reason="refunds are billing's")
        if kind == "bug":
            product, _, symptom = rest.partition(" ")
            incident = Incident(case_id=case.task_id, product=product, symptom=symptom)
            return Handoff(to="tech", value=incident, reason=f"a {product} bug")
        return _done(case.task_id, "front", f"see the FAQ on {case.payload!r}")

    @app.specialist("billing", input=Refund, output=TaskCompleted)
    async def billing(refund: Refund, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(LATENCY)
        return _done(
            refund.case_id, "billing", f"refund of {refund.cents / 100:.2f} on {refund.order} approved"
        )

    @app.specialist("tech", input=Incident, output=TaskCompleted, concurrency=8, ordering="unordered")
    async def tech(incident: Incident, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(HANG if incident.product in OUTAGE else LATENCY)
        fix = f"fix {sum(incident.symptom.encode()) % 90 + 10}"
        return _done(incident.case_id, "tech", f"{incident.product}: {incident.symptom!r} -> {fix}")

    @app.specialist("open-ticket", input=TaskRequested, output=TaskCompleted)
    async def open_ticket(case: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(LATENCY)  # the helpdesk system is called here
        return _done(case.task_id, "open-ticket", f"T-{sum(case.task_id.encode()) % 9000 + 1000}")

    @app.specialist("close-ticket", input=TaskRequested, output=TaskCompleted)
    async def close_ticket(ticket: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(LATENCY)
        return _done(ticket.task_id, "close-ticket", f"closed {ticket.payload}: nobody could take the case")

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def support(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        ticket = (await wf.call("open-ticket", case)).result or ""
        wf.compensate(
            "close-ticket", TaskRequested(task_id=case.task_id, capability="close-ticket", payload=ticket)
        )
        # The answer of whoever the case was handed to; a refused handoff or two timeouts escape.
        answer = await wf.call("front", case, timeout=STEP_TIMEOUT, retry=Retry(attempts=2, backoff=0.5))
        return _done(case.task_id, answer.agent, f"{ticket}: {answer.result}")

    return app


app = build()
