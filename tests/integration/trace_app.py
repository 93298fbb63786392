"""A 3-stage pipeline for the tracing tests, run by `streams run` in separate worker processes.

``TRACE_PREFIX`` names its topics; ``TRACE_GUARANTEE`` (default ``at_least_once``) is every agent's
delivery guarantee.
"""

from __future__ import annotations

import os

from streams import App, AtLeastOnce, Context, ExactlyOnce
from streams.events import TaskCompleted, TaskRequested, TaskStatus

PREFIX = os.environ["TRACE_PREFIX"]
GUARANTEE = ExactlyOnce() if os.environ.get("TRACE_GUARANTEE") == "exactly_once" else AtLeastOnce()

app = App(PREFIX.replace(".", "-"))
tasks = app.topic(f"{PREFIX}.tasks", value=TaskRequested, partitions=2)
planned = app.topic(f"{PREFIX}.planned", value=TaskRequested, partitions=2)
researched = app.topic(f"{PREFIX}.researched", value=TaskRequested, partitions=2)
done = app.topic(f"{PREFIX}.done", value=TaskCompleted, partitions=2)


@app.agent(tasks, start="earliest", guarantee=GUARANTEE)
async def planner(task: TaskRequested, ctx: Context) -> None:
    await ctx.send(planned, task)


@app.agent(planned, start="earliest", guarantee=GUARANTEE)
async def researcher(task: TaskRequested, ctx: Context) -> None:
    if task.payload == "poison":
        raise ValueError("cannot research poison")
    await ctx.send(researched, task)


@app.agent(researched, start="earliest", guarantee=GUARANTEE)
async def writer(task: TaskRequested, ctx: Context) -> None:
    await ctx.send(done, TaskCompleted(task_id=task.task_id, agent="writer", status=TaskStatus.SUCCEEDED))
