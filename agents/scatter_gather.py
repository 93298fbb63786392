"""Parallel fan-out / fan-in (scatter-gather): one query asked of six index shards, at most three at
a time, each wave gathered by a deadline, the answer made of whatever came back.

    streams run agents.scatter_gather:app     # the workflow engine and the shard specialist
    streams workflow start agents.scatter_gather:app search \\
        --input '{"task_id": "q1", "capability": "search", "payload": "kafka"}' --wait

Shard ``s4`` is offline (its search fails after two tries) and ``s6`` is cold (it answers after the
deadline), so each query shows both kinds of partial failure: the answer lists the shards that
failed and those that were late, and is still ``SUCCEEDED`` while at least ``QUORUM`` shards
answered; with fewer it is ``FAILED``, saying why. ``wf.gather_within(..., timeout=, at_least=0)``
never raises here: the quorum is decided over all waves. Concurrency is bounded twice: the workflow
asks ``MAX_PARALLEL`` shards at once, and the specialist handles ``concurrency`` requests at once per
worker. The shard search stands in for a model or index call (a short sleep and a computed answer).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from streams import App, Context, Retry, TransientError, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

SHARDS = ("s1", "s2", "s3", "s4", "s5", "s6")
MAX_PARALLEL = 3  # shards asked at once
QUORUM = 4  # shards that must answer
OFFLINE = {"s4"}
COLD = {"s6"}
MODEL_LATENCY = 0.01


def _list(shards: list[str]) -> str:
    return ", ".join(shards) or "none"


def build(name: str = "shards", timeout: float = 2.0, cold_latency: float = 3.0) -> App:
    """The app, named ``name``: each wave waits ``timeout`` seconds; a cold shard takes
    ``cold_latency`` seconds to answer."""
    app = App(name)

    @app.specialist(
        "shard",
        input=TaskRequested,
        output=TaskCompleted,
        concurrency=8,
        retry=Retry(attempts=2, backoff=0.05),
    )
    async def shard(ask: TaskRequested, ctx: Context) -> TaskCompleted:
        query, shard_id = ask.payload.rsplit("@", 1)
        if shard_id in OFFLINE:
            raise TransientError(f"shard {shard_id} is offline")
        # a real model client (or the index) is called here
        await asyncio.sleep(cold_latency if shard_id in COLD else MODEL_LATENCY)
        hits = sum(query.encode() + shard_id.encode()) % 10
        return TaskCompleted(
            task_id=ask.task_id, agent=shard_id, status=TaskStatus.SUCCEEDED, result=f"{hits}"
        )

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def search(query: TaskRequested, wf: Workflow) -> TaskCompleted:
        hits: dict[str, str] = {}
        failed: list[str] = []
        late: list[str] = []
        for start in range(0, len(SHARDS), MAX_PARALLEL):
            wave = SHARDS[start : start + MAX_PARALLEL]
            asks = [
                wf.call(
                    "shard",
                    TaskRequested(
                        task_id=f"{query.task_id}/{s}", capability="shard", payload=f"{query.payload}@{s}"
                    ),
                )
                for s in wave
            ]
            got = await wf.gather_within(*asks, timeout=timedelta(seconds=timeout), at_least=0)
            hits.update({wave[i]: value.result or "" for i, value in enumerate(got.values) if value})
            failed += [wave[i] for i in got.failed]
            late += [wave[i] for i in got.late]
        found = ", ".join(f"{s}: {n}" for s, n in hits.items())
        summary = (
            f"{len(hits)} of {len(SHARDS)} shards ({found}); failed: {_list(failed)}; late: {_list(late)}"
        )
        ok = len(hits) >= QUORUM
        return TaskCompleted(
            task_id=query.task_id,
            agent="search",
            status=TaskStatus.SUCCEEDED if ok else TaskStatus.FAILED,
            result=summary,
            error=None if ok else f"fewer than {QUORUM} shards answered",
        )

    return app


app = build()
