"""Workflows under kill -9: an engine and its specialists, run by `streams run` in processes the
chaos test kills.

chaos: three sequential calls to "step", a 5-way scatter-gather on "fan", a short durable sleep, then
the result: every part computed from the input, so the test knows each workflow's right output.
"""

from __future__ import annotations

import asyncio
import os

from streams import App, Context, ExactlyOnce, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

PREFIX = os.environ.get("CHAOS_PREFIX", "chaos.unset")
PARTITIONS = int(os.environ.get("CHAOS_PARTITIONS", "6"))
STEP_SLEEP = float(os.environ.get("CHAOS_HANDLER_SLEEP", "0"))
FAN_OUT = 5

app = App(PREFIX.replace(".", "-"))


def _request(case: str, payload: str) -> TaskRequested:
    return TaskRequested(task_id=case, capability="chaos", payload=payload)


def expected(payload: str) -> str:
    """The right output of a workflow started with ``payload``."""
    chained = f"{payload}+1+2+3"
    return ",".join(f"{chained}/{i}!" for i in range(FAN_OUT))


@app.specialist(
    "step",
    input=TaskRequested,
    output=TaskCompleted,
    partitions=PARTITIONS,
    concurrency=16,
    guarantee=ExactlyOnce(),
)
async def step(request: TaskRequested, ctx: Context) -> TaskCompleted:
    if STEP_SLEEP:
        await asyncio.sleep(STEP_SLEEP)  # keeps the run long enough for the kills to land mid-way
    return TaskCompleted(
        task_id=request.task_id, agent="step", status=TaskStatus.SUCCEEDED, result=request.payload
    )


@app.specialist(
    "fan",
    input=TaskRequested,
    output=TaskCompleted,
    partitions=PARTITIONS,
    concurrency=16,
    guarantee=ExactlyOnce(),
)
async def fan(request: TaskRequested, ctx: Context) -> TaskCompleted:
    if STEP_SLEEP:
        await asyncio.sleep(STEP_SLEEP)
    return TaskCompleted(
        task_id=request.task_id, agent="fan", status=TaskStatus.SUCCEEDED, result=f"{request.payload}!"
    )


@app.workflow(input=TaskRequested, output=TaskCompleted, partitions=PARTITIONS)
async def chaos(case: TaskRequested, wf: Workflow) -> TaskCompleted:
    text = case.payload
    for n in (1, 2, 3):
        text = (await wf.call("step", _request(case.task_id, f"{text}+{n}"))).result or ""
    parts = await wf.gather(*(wf.call("fan", _request(case.task_id, f"{text}/{i}")) for i in range(FAN_OUT)))
    await wf.sleep(0.5)  # a durable timer in every workflow: kills must not lose it
    return TaskCompleted(
        task_id=case.task_id,
        agent="chaos",
        status=TaskStatus.SUCCEEDED,
        result=",".join(p.result or "" for p in parts),
    )
