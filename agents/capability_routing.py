"""Capability routing with least-load balancing and priority classes: one ``translate`` capability
served by a fast pool and a slow one, fed mostly ``low`` batch work and a few ``critical`` requests.

    streams run agents.capability_routing:app --agent translate.gpu --heartbeat-interval 0.5
    streams run agents.capability_routing:app --agent translate.cpu --heartbeat-interval 0.5
    python -m agents.capability_routing --low 300 --critical 6     # the callers, in a third terminal

The ``gpu`` pool translates 2 requests at a time in 50 ms each (40/s), the ``cpu`` pool 1 at a time in
200 ms (5/s). Each is its own consumer group (``<app>.translate.gpu``), run and scaled apart. Callers
name the capability only: each call goes to the pool with the least work in flight plus lag, as its
workers' heartbeats say (beat often, or routing follows them coarsely). The feeder keeps 40 ``low``
calls outstanding, so each pool holds a queue of about 20; the fast one drains its queue 8x faster, so
while the flood lasts it is sent about 8 calls in 9 (the slow one also answers the queue it holds when
the flood ends). Every half second it makes one ``critical`` call, which goes to the head of its pool's
queue: it overtakes most of the ``low`` calls made before it. Run once on a local broker, it printed::

    answered by pool: gpu 244, cpu 62
    low calls: median 0.54 s; critical calls: median 0.09 s, slowest 0.25 s
    each critical call overtook 30 to 38 of the 40 low calls outstanding when it was made

``ROUTING_APP`` renames the app (its topics and consumer groups are ``<name>.*``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from streams import App, Client, Context, Priorities, Priority
from streams.events import TaskCompleted, TaskRequested, TaskStatus

POOLS = {"gpu": (2, 0.05), "cpu": (1, 0.2)}  # pool: requests at a time, seconds per request
OUTSTANDING = 40  # low calls the feeder keeps in flight
CRITICAL_EVERY = 0.5  # seconds between critical calls


def _pool(app: App, pool: str, concurrency: int, seconds: float) -> None:
    # Every class below `critical` still gets 5% of the starts while it has requests waiting.
    @app.specialist(
        "translate",
        input=TaskRequested,
        output=TaskCompleted,
        pool=pool,
        concurrency=concurrency,
        priorities=Priorities(min_share=0.05),
    )
    async def translate(text: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(seconds)  # a real model client is called here
        words = " ".join(word[::-1] for word in text.payload.split())
        return TaskCompleted(task_id=text.task_id, agent=pool, status=TaskStatus.SUCCEEDED, result=words)


def build(name: str = "routing", pools: dict[str, tuple[int, float]] = POOLS) -> App:
    """The app, named ``name``, with one ``translate`` pool per entry of ``pools``."""
    app = App(name)
    for pool, (concurrency, seconds) in pools.items():
        _pool(app, pool, concurrency, seconds)
    return app


app = build(os.environ.get("ROUTING_APP", "routing"))


@dataclass
class Report:
    """What the callers saw: answers by pool, latencies by class, and for each critical call how many
    low calls made before it were still unanswered when it was answered."""

    outstanding: int
    served: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, list[float]] = field(default_factory=lambda: {"low": [], "critical": []})
    overtaken: list[int] = field(default_factory=list)


async def feed(client: Client, low: int, critical: int, outstanding: int = OUTSTANDING) -> Report:
    """``low`` batch calls, ``outstanding`` at a time, and meanwhile ``critical`` interactive ones."""
    report = Report(outstanding)
    unanswered: set[int] = set()  # low calls made and not answered yet
    slots = asyncio.Semaphore(outstanding)

    async def call(task_id: str, priority: Priority) -> None:
        started = time.monotonic()
        text = TaskRequested(task_id=task_id, capability="translate", payload=f"text number {task_id}")
        done = await client.call("translate", text, priority=priority, timeout=120)
        report.seconds[priority].append(time.monotonic() - started)
        report.served[done.agent] += 1

    async def batch(i: int) -> None:
        async with slots:
            unanswered.add(i)
            await call(f"low-{i}", "low")
            unanswered.discard(i)

    async def interactive() -> None:
        for i in range(critical):
            await asyncio.sleep(CRITICAL_EVERY)
            ahead = set(unanswered)
            await call(f"critical-{i}", "critical")
            report.overtaken.append(len(ahead & unanswered))

    await asyncio.gather(interactive(), *(batch(i) for i in range(low)))
    return report


def summary(report: Report) -> str:
    """The report in three lines, as the feeder prints it."""
    low, critical = report.seconds["low"] or [0.0], report.seconds["critical"] or [0.0]
    overtaken = report.overtaken or [0]
    pools = ", ".join(f"{pool} {count}" for pool, count in report.served.most_common())
    return (
        f"answered by pool: {pools}\n"
        f"low calls: median {statistics.median(low):.2f} s; critical calls: median "
        f"{statistics.median(critical):.2f} s, slowest {max(critical):.2f} s\n"
        f"each critical call overtook {min(overtaken)} to {max(overtaken)} of the "
        f"{report.outstanding} low calls outstanding when it was made"
    )


async def _main(low: int, critical: int) -> None:
    async with Client(app) as client:
        print(summary(await feed(client, low, critical)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Call agents.capability_routing: low batch work, some critical."
    )
    parser.add_argument("--low", type=int, default=300)
    parser.add_argument("--critical", type=int, default=6)
    arguments = parser.parse_args()
    asyncio.run(_main(arguments.low, arguments.critical))
