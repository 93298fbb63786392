"""Sagas under kill -9: an engine and its specialists, run by `streams run` in processes the chaos
test kills.

trip: book "a", then "b", each followed by its compensation; the third step always fails, so every
run unwinds: "undo" runs for b, then for a. Each compensation handled appends a line to
CHAOS_EFFECTS_FILE, a side effect outside Kafka that shows both the order and any repeat.
"""

from __future__ import annotations

import asyncio
import os

from streams import App, Context, DataError, ExactlyOnce, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

PREFIX = os.environ.get("CHAOS_PREFIX", "chaos.unset")
PARTITIONS = int(os.environ.get("CHAOS_PARTITIONS", "6"))
UNDO_SLEEP = float(os.environ.get("CHAOS_HANDLER_SLEEP", "0"))
EFFECTS = os.environ.get("CHAOS_EFFECTS_FILE")

effects_fd = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if EFFECTS else None

app = App(PREFIX.replace(".", "-"))


def _request(case: str, payload: str) -> TaskRequested:
    return TaskRequested(task_id=case, capability="saga", payload=payload)


def _done(request: TaskRequested, agent: str) -> TaskCompleted:
    return TaskCompleted(
        task_id=request.task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=request.payload
    )


@app.specialist(
    "book", input=TaskRequested, output=TaskCompleted, partitions=PARTITIONS, guarantee=ExactlyOnce()
)
async def book(request: TaskRequested, ctx: Context) -> TaskCompleted:
    if request.payload == "c":
        raise DataError("c cannot be booked")
    return _done(request, "book")


@app.specialist(
    "undo",
    input=TaskRequested,
    output=TaskCompleted,
    partitions=PARTITIONS,
    concurrency=16,
    guarantee=ExactlyOnce(),
)
async def undo(request: TaskRequested, ctx: Context) -> TaskCompleted:
    if UNDO_SLEEP:
        await asyncio.sleep(UNDO_SLEEP)  # keeps the unwinding long enough for the kills to land mid-way
    if effects_fd is not None:  # one O_APPEND write per line: whole lines, even from a killed process
        os.write(effects_fd, f"{request.task_id} {request.payload}\n".encode())
    return _done(request, "undo")


@app.workflow(input=TaskRequested, output=TaskCompleted, partitions=PARTITIONS)
async def trip(case: TaskRequested, wf: Workflow) -> TaskCompleted:
    for thing in ("a", "b", "c"):
        await wf.call("book", _request(case.task_id, thing))
        wf.compensate("undo", _request(case.task_id, thing))
    return _done(case, "trip")
