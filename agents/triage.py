"""The README's example agent, runnable: `streams run agents.triage:app`.

`ask_a_model` stands in for an I/O-bound call (a model or an API): about 10 ms per task.
"""

import asyncio
import json

from streams import App, Context, ExactlyOnce, Retry
from streams.events import TaskCompleted, TaskRequested, TaskStatus

app = App("triage")
tasks = app.topic("triage.tasks", value=TaskRequested, partitions=12)
results = app.topic("triage.results", value=TaskCompleted, partitions=12)


async def ask_a_model(payload: str) -> str:
    await asyncio.sleep(0.01)
    return json.dumps({"answer": f"looked into {payload}"})


@app.agent(
    tasks,
    concurrency=64,
    ordering="key",
    guarantee=ExactlyOnce(),
    retry=Retry(attempts=5, backoff=0.2, max_backoff=30),
)
async def research(task: TaskRequested, ctx: Context) -> None:
    answer = await ask_a_model(task.payload)
    await ctx.send(
        results,
        TaskCompleted(task_id=task.task_id, agent="research", status=TaskStatus.SUCCEEDED, result=answer),
    )
