"""Two agents for the `streams monitor` tests, under a name of the test's own (MONITORED_PREFIX):
``orders`` handles a steady stream, ``billing`` is the one the test kills. Run by `streams run`
in worker processes, beating as STREAMS_HEARTBEAT_* says."""

from __future__ import annotations

import asyncio
import os

from streams import App, Context
from streams.events import TaskRequested

prefix = os.environ["MONITORED_PREFIX"]
app = App(prefix.replace(".", "-"))
orders = app.topic(f"{prefix}.orders", value=TaskRequested, partitions=2)
billing = app.topic(f"{prefix}.billing", value=TaskRequested, partitions=2)


@app.agent(orders, name="orders", concurrency=8)
async def handle_orders(task: TaskRequested, ctx: Context) -> None:
    await asyncio.sleep(0.002)  # a handler that takes time, so latency has something to show


@app.agent(billing, name="billing")
async def handle_billing(task: TaskRequested, ctx: Context) -> None:
    await asyncio.sleep(0)
