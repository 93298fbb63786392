"""Market-based allocation: specialists bid on a task within a deadline, the best bid wins the work.

    streams run agents.market:app
    streams workflow start agents.market:app auction --wait \\
        --input '{"task_id": "t1", "capability": "auction", "payload": "translate the refund policy"}'

Each contractor has two capabilities: ``bid-<name>`` (quote a price for a task) and ``do-<name>``
(do it). The ``auction`` workflow asks every contractor for a bid at once (scatter) and takes the bids
that arrive within ``BID_WINDOW`` seconds (``wf.gather_within``: a contractor that answers late, or
fails, is left out; with no bid at all the auction fails with ``CallTimeout``). The lowest price wins
(ties: the contractor's name), and the task goes to the winner's ``do-`` capability. Each decision is
a journaled step, so a restarted engine awards the same task to the same contractor.

Contractors stand in for agents with different costs: ``gpu`` charges 3 per word, ``cpu`` 10 plus 1
per word (cheaper for long tasks), ``edge`` 1 per word but takes 5 s to quote, past the deadline.
"""

from __future__ import annotations

import asyncio

from streams import App, Context, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

BID_WINDOW = 2.0  # seconds the auction waits for bids
CONTRACTORS = {"gpu": (0, 3, 0.01), "cpu": (10, 1, 0.01), "edge": (0, 1, 5.0)}  # fee, per word, quote time


def _done(task: TaskRequested, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task.task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def _contractor(app: App, name: str, fee: int, per_word: int, quote_time: float) -> None:
    @app.specialist(f"bid-{name}", input=TaskRequested, output=TaskCompleted, concurrency=8)
    async def bid(task: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(quote_time)
        return _done(task, name, str(fee + per_word * len(task.payload.split())))

    @app.specialist(f"do-{name}", input=TaskRequested, output=TaskCompleted, concurrency=8)
    async def work(task: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(0.01)
        return _done(task, name, f"{task.payload.upper()} (by {name})")


def build(name: str = "market", contractors: dict[str, tuple[int, int, float]] = CONTRACTORS) -> App:
    """The app, named ``name``, with ``contractors`` (name: fee, price per word, seconds to quote)."""
    app = App(name)
    for contractor, terms in contractors.items():
        _contractor(app, contractor, *terms)

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def auction(task: TaskRequested, wf: Workflow) -> TaskCompleted:
        asks = [wf.call(f"bid-{contractor}", task) for contractor in contractors]
        bids = await wf.gather_within(*asks, timeout=BID_WINDOW, at_least=1)
        price, winner = min((int(bid.result or 0), bid.agent) for bid in bids.answered)
        done = await wf.call(f"do-{winner}", task)
        return _done(task, "auction", f"{winner} at {price} of {len(bids.answered)} bids: {done.result}")

    return app


app = build()
