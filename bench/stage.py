"""The runtime's CPU per message on one relay stage, without a consumer: ``python -m bench.stage``.

Builds the worker's own handling path for one at-least-once agent (the handler of the pipeline's first
stage: decode a ``TaskRequested``, ``model_copy`` it with one field changed, ``ctx.send`` it on) with
the latency middleware every worker has, feeds it N messages that are already in memory in batches
of 500 (as the poll thread hands them over), and reports the event loop thread's CPU per message
until every message is finished: its output acknowledged by the broker (a topic it creates and
deletes), or with ``--no-produce``, only queued to a producer that sends nothing.

No consumer, no other stages, no timed wall clock: the thread's own CPU time, the best of ``--runs``,
so that two checkouts compare within a few per cent on a shared machine (``PYTHONPATH=<checkout>``).
The pipeline scenario of ``bench.run`` remains the measure of record; this isolates the part of it
that the runtime's per-message code decides.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

from streams import App, Context, Settings
from streams import headers as hdr
from streams.events import TaskRequested
from streams.middleware import Chain
from streams.serde.codec import AvroEncoder, RecordDecoder
from streams.serde.payloads import Payloads
from streams.serde.registry import InMemoryRegistry
from streams.telemetry.latency import LatencyMiddleware
from streams.transport import clients
from streams.worker.delivery import AtLeastOnceDelivery
from streams.worker.handling import MessageHandler
from streams.worker.items import WorkItem
from streams.worker.outbox import Encoders
from streams.worker.processing import Processor
from streams.worker.stats import WorkerStats

_BATCH = 500


class _NoProducer:
    """Takes every produce() and sends nothing (``--no-produce``): what is left is handling alone."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def produce(self, *args: Any, **kwargs: Any) -> None:
        return None

    def poll(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def _one_run(messages: int, produce: bool) -> float:
    """CPU µs per message on this thread, from the first batch until all are finished."""
    app = App("bench-stage")
    name = f"bench-stage-{uuid.uuid4().hex[:8]}"
    source = app.topic(f"{name}.in", value=TaskRequested)
    sink = app.topic(f"{name}.out", value=TaskRequested)

    @app.agent(source)
    async def stage1(task: TaskRequested, ctx: Context) -> None:
        update = {"capability": "stage2", "context": {**task.context, "stage1": "done"}}
        await ctx.send(sink, task.model_copy(update=update))

    settings = Settings()
    registry = InMemoryRegistry()
    admin = clients.admin(settings)
    if produce:
        from confluent_kafka.admin import NewTopic

        for future in admin.create_topics([NewTopic(sink.name, 1, 1)]).values():
            future.result()
    producer = clients.async_producer(settings, client_id=name)
    if not produce:
        producer._producer = _NoProducer(producer._producer)  # type: ignore[assignment]
    stats = WorkerStats()
    agent = app.agents["stage1"]
    handler = MessageHandler(
        agent,
        RecordDecoder(registry, TaskRequested),
        AtLeastOnceDelivery(producer, Encoders(registry)),
        stats,
        middleware=Chain([LatencyMiddleware()]),
        payloads=Payloads(registry),
    )
    failures: list[BaseException] = []
    processor = Processor(agent, handler, stats, on_fatal=failures.append)
    value = AvroEncoder(registry, f"{source.name}-value", TaskRequested.avro_schema())(
        TaskRequested(task_id="t1", capability="stage1", payload='{"n": 1, "text": "hello world"}')
    )
    headers = hdr.origin_headers()
    items = [
        WorkItem(source.name, 0, offset, f"key-{offset % 1000}".encode(), value, headers, 0, len(value))
        for offset in range(messages)
    ]
    try:
        if produce:
            await producer.send(sink.name, b"warm-up")  # metadata and connection before the clock
        started = time.thread_time()
        for start in range(0, messages, _BATCH):
            processor.accept(items[start : start + _BATCH])
            await asyncio.sleep(0)
        if produce:
            left = await processor.finish_received(60)
            if left or failures:
                raise RuntimeError(f"{left} message(s) unfinished, failures: {failures[:1]}")
        return (time.thread_time() - started) / messages * 1e6
    finally:
        producer.close(5)
        if produce:
            admin.delete_topics([sink.name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=5, help="report the best (least CPU) of this many")
    parser.add_argument("--no-produce", action="store_true", help="queue to a producer that sends nothing")
    args = parser.parse_args()
    results = [asyncio.run(_one_run(args.messages, not args.no_produce)) for _ in range(args.runs)]
    where = os.environ.get("PYTHONPATH", ".")
    mode = "handling only (no produce)" if args.no_produce else "handling + produce + acknowledgement"
    print(
        f"{where}: {mode}: best {min(results):.1f} µs CPU per message of {args.runs} runs "
        f"({', '.join(f'{r:.1f}' for r in results)})"
    )


if __name__ == "__main__":
    main()
