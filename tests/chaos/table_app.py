"""A keyed counter in a table, run by `streams run` in worker processes that the chaos tests kill.

count: TaskRequested on IN -> TaskCompleted on OUT whose result is how many messages of its key the
table has counted, this one included. Exactly-once: the table's changelog, the output and the input
offset commit in one transaction, so after any crash the count per key goes 1, 2, 3, ... with no gap
and no repeat. CHAOS_TABLE_STORE picks the table's store (memory by default; rocksdb keeps it under
STREAMS_STATE_DIR).
"""

from __future__ import annotations

import asyncio
import os

from streams import App, Context, ExactlyOnce
from streams.events import MetricSample, TaskCompleted, TaskRequested, TaskStatus
from tests._records import count_up

PREFIX = os.environ["CHAOS_PREFIX"]
PARTITIONS = int(os.environ.get("CHAOS_PARTITIONS", "6"))
CONCURRENCY = int(os.environ.get("CHAOS_CONCURRENCY", "32"))
HANDLER_SLEEP = float(os.environ.get("CHAOS_HANDLER_SLEEP", "0"))
STORE = os.environ.get("CHAOS_TABLE_STORE", "memory")

app = App(PREFIX.replace(".", "-"))
inputs = app.topic(f"{PREFIX}.in", value=TaskRequested, partitions=PARTITIONS)
outputs = app.topic(f"{PREFIX}.out", value=TaskCompleted, partitions=PARTITIONS)
counts = app.table("counts", value=MetricSample, store="rocksdb" if STORE == "rocksdb" else "memory")


@app.agent(inputs, concurrency=CONCURRENCY, guarantee=ExactlyOnce(), tables=[counts])
async def count(task: TaskRequested, ctx: Context) -> None:
    if HANDLER_SLEEP:
        await asyncio.sleep(HANDLER_SLEEP)  # keeps the run long enough for the kills to land mid-way
    seen = ctx.table(counts).update(str(ctx.key), count_up)
    assert seen is not None
    await ctx.send(
        outputs,
        TaskCompleted(
            task_id=task.task_id, agent="count", status=TaskStatus.SUCCEEDED, result=str(int(seen.value))
        ),
    )
