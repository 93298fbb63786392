"""Caching and batching of agent work: an idempotent lookup served from the workflow's cache, and a
specialist that groups concurrent requests into one model call.

    streams run agents.caching_batching:app
    streams workflow start agents.caching_batching:app profile --wait \\
        --input '{"task_id": "c1", "capability": "profile", "payload": "acme: late refund for order"}'

- **Caching.** ``lookup`` (a company's record) is idempotent, so the workflow calls it with
  ``cache=timedelta(minutes=10)``: for ten minutes, a run asking for the same company gets the result
  journaled as ``cached``, and no request is sent (hits and misses in
  ``streams_workflow_cache_lookups``). The cache is kept per partition of the workflow's events, so
  the workflow has one partition: with P, a company may be looked up P times per ten minutes.
- **Batching.** ``embed`` takes one word per request, but the model it stands for takes a batch: a
  :class:`Batcher` collects the requests in flight (up to 16, or what arrived within 20 ms) into one
  model call, and each handler gets its own answer back. The specialist runs 32 requests at once,
  unordered (a workflow's requests share its key, which would otherwise queue them one by one). A
  failed batch fails each of its requests, which the specialist's retry takes again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta

from streams import App, Context, Retry, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

MODEL_LATENCY = 0.05  # seconds a stand-in model call takes, whatever the batch size


class Batcher:
    """Groups concurrent :meth:`submit` calls into calls of ``run(items) -> results`` (same order)."""

    def __init__(
        self, run: Callable[[list[str]], Awaitable[list[str]]], size: int = 16, linger: float = 0.02
    ):
        self._run, self._size, self._linger = run, size, linger
        self._waiting: list[tuple[str, asyncio.Future[str]]] = []
        self._flush: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references
        self.batches: deque[int] = deque(maxlen=100)  # the sizes of the latest model calls

    async def submit(self, item: str) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._waiting) >= self._size:
            self._start()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self._linger, self._start)
        return await future

    def _start(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self._waiting = self._waiting, []
        self.batches.append(len(batch))
        call = asyncio.get_running_loop().create_task(self._call(batch))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    async def _call(self, batch: list[tuple[str, asyncio.Future[str]]]) -> None:
        # A handler cancelled meanwhile (its worker shutting down) has stopped waiting: skip it.
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every request of the batch fails with it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


async def embed_model(words: list[str]) -> list[str]:
    """Stands in for a batch model call: one sleep for the whole batch."""
    await asyncio.sleep(MODEL_LATENCY)
    return [f"{word}:{sum(map(ord, word)) % 97}" for word in words]


def _done(task: TaskRequested, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task.task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def build(name: str = "profiles", batcher: Batcher | None = None) -> App:
    """The app, named ``name``; ``batcher`` groups ``embed``'s model calls (tests pass their own)."""
    app = App(name)
    embedder = batcher or Batcher(embed_model)

    @app.specialist("lookup", input=TaskRequested, output=TaskCompleted)
    async def lookup(company: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(MODEL_LATENCY)
        return _done(company, "lookup", f"{company.payload} (founded {1900 + len(company.payload)})")

    @app.specialist(
        "embed",
        input=TaskRequested,
        output=TaskCompleted,
        concurrency=32,
        ordering="unordered",
        retry=Retry(attempts=3, backoff=0.1),
    )
    async def embed(word: TaskRequested, ctx: Context) -> TaskCompleted:
        return _done(word, "embed", await embedder.submit(word.payload))

    # One partition of events, so every run shares one cache (each partition keeps its own).
    @app.workflow(input=TaskRequested, output=TaskCompleted, partitions=1)
    async def profile(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        company, _, text = case.payload.partition(":")
        # Only the company in the request: the cache goes by the input's bytes.
        ask = TaskRequested(task_id=f"lookup/{company.strip()}", capability="lookup", payload=company.strip())
        record = wf.call("lookup", ask, cache=timedelta(minutes=10))
        words = [
            wf.call("embed", TaskRequested(task_id=f"{case.task_id}/{i}", capability="embed", payload=word))
            for i, word in enumerate(text.split())
        ]
        vectors = await wf.gather(*words)
        summary = f"{(await record).result}: {' '.join(v.result or '' for v in vectors)}"
        return _done(case, "profile", summary)

    return app


app = build()
