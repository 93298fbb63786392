"""A 2-stage keyed pipeline run by `streams run` in worker processes that the chaos tests kill.

stage one: TaskRequested on IN  -> TaskRequested on MID (same key, same payload)
stage two: TaskRequested on MID -> TaskCompleted on OUT (result = payload), and with
           CHAOS_EFFECTS_FILE set, a side effect outside Kafka: a line appended to that file
Topic names, guarantee and concurrency come from the environment so each test gets fresh ones.
"""

from __future__ import annotations

import asyncio
import os

from streams import App, AtLeastOnce, ExactlyOnce, Limits
from streams.context import Context
from streams.events import TaskCompleted, TaskRequested, TaskStatus

PREFIX = os.environ["CHAOS_PREFIX"]
EXACTLY_ONCE = os.environ.get("CHAOS_GUARANTEE", "exactly_once") == "exactly_once"
CONCURRENCY = int(os.environ.get("CHAOS_CONCURRENCY", "32"))
PARTITIONS = int(os.environ.get("CHAOS_PARTITIONS", "6"))
HANDLER_SLEEP = float(os.environ.get("CHAOS_HANDLER_SLEEP", "0"))
DEDUP = os.environ.get("CHAOS_DEDUP") == "1"
# Below the backlog, so a worker holds part of it in memory and the rest waits in Kafka.
MAX_IN_FLIGHT = int(os.environ.get("CHAOS_MAX_IN_FLIGHT", "10000"))
# Stage two's side effect outside Kafka: one line per handled message, appended to this file.
EFFECTS = os.environ.get("CHAOS_EFFECTS_FILE")

app = App(PREFIX.replace(".", "-"))
inputs = app.topic(f"{PREFIX}.in", value=TaskRequested, partitions=PARTITIONS)
middle = app.topic(f"{PREFIX}.mid", value=TaskRequested, partitions=PARTITIONS)
outputs = app.topic(f"{PREFIX}.out", value=TaskCompleted, partitions=PARTITIONS)

guarantee = ExactlyOnce() if EXACTLY_ONCE else AtLeastOnce(dedup=DEDUP)
limits = Limits(max_in_flight=MAX_IN_FLIGHT)
effects_fd = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if EFFECTS else None


@app.agent(inputs, concurrency=CONCURRENCY, guarantee=guarantee, limits=limits)
async def stage_one(task: TaskRequested, ctx: Context) -> None:
    if HANDLER_SLEEP:
        await asyncio.sleep(HANDLER_SLEEP)
    await ctx.send(middle, task)


@app.agent(middle, concurrency=CONCURRENCY, guarantee=guarantee, limits=limits)
async def stage_two(task: TaskRequested, ctx: Context) -> None:
    if HANDLER_SLEEP:
        await asyncio.sleep(HANDLER_SLEEP)
    if effects_fd is not None:
        os.write(effects_fd, f"{task.task_id}\n".encode())
    await ctx.send(
        outputs,
        TaskCompleted(
            task_id=task.task_id, agent="stage_two", status=TaskStatus.SUCCEEDED, result=task.payload
        ),
    )
