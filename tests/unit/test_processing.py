"""The processor (lanes, offsets, drains) driven directly, as the twin and the worker drive it."""

import asyncio
from collections.abc import Callable, Sequence

import pytest

from streams import App, Context
from streams.errors import TransportError
from streams.events import TaskRequested
from streams.middleware import Chain
from streams.serde.codec import AvroEncoder, RecordDecoder
from streams.serde.registry import InMemoryRegistry
from streams.testing.broker import BrokerSender, InMemoryBroker
from streams.worker.delivery import AtLeastOnceDelivery
from streams.worker.handling import MessageHandler
from streams.worker.items import WorkItem
from streams.worker.outbox import Encoders
from streams.worker.processing import Processor
from streams.worker.stats import WorkerStats

pytestmark = pytest.mark.unit


async def test_refetched_offsets_are_skipped_not_handled_twice_and_later_ones_still_count() -> None:
    app = App("proc")
    tasks = app.topic("proc.tasks", value=TaskRequested, partitions=1)
    handled: list[int] = []

    @app.agent(tasks, concurrency=4)
    async def record(task: TaskRequested, ctx: Context) -> None:
        handled.append(ctx.offset)

    registry = InMemoryRegistry()
    broker = InMemoryBroker()
    broker.create_topic(tasks.name, 1)
    broker.create_topic(app.agents["record"].dead_letter_topic, 1)
    encode = AvroEncoder(registry, "proc.tasks-value", TaskRequested.avro_schema())
    stats = WorkerStats()
    handler = MessageHandler(
        app.agents["record"],
        RecordDecoder(registry, TaskRequested),
        AtLeastOnceDelivery(BrokerSender(broker), Encoders(registry)),
        stats,
        middleware=Chain(()),
    )
    failures: list[BaseException] = []
    processor = Processor(app.agents["record"], handler, stats, on_fatal=failures.append)

    def item(offset: int) -> WorkItem:
        value = encode(TaskRequested(task_id=str(offset), capability="c", payload="p"))
        return WorkItem(tasks.name, 0, offset, b"k", value, [], 0, len(value))

    processor.accept([item(o) for o in range(5)])
    processor.accept([item(o) for o in (2, 3, 4, 5, 6)])  # the client rewound to offset 2
    assert await processor.finish_received(5.0) == 0
    assert failures == []
    assert sorted(handled) == list(range(7)), "2, 3 and 4 once each; 5 and 6 handled"
    assert stats.refetched == 3
    assert processor.offsets.committable() == {(tasks.name, 0): 7}


class _HeldSender:
    """Acknowledges nothing until told: each send's report waits in ``pending``."""

    def __init__(self) -> None:
        self.pending: list[Callable[[TransportError | None], None]] = []

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        raise AssertionError("the worker's outputs are sent with send_reported")

    def send_reported(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        partition: int | None,
        report: Callable[[TransportError | None], None],
    ) -> None:
        self.pending.append(report)

    def acknowledge(self, reports: list[Callable[[TransportError | None], None]]) -> None:
        for report in reports:
            report(None)


async def test_a_late_acknowledgement_from_before_a_revocation_does_not_finish_a_new_receipt() -> None:
    """Handled, sent, not yet acknowledged: the partition is revoked (drain ran out) and assigned back,
    so the same offsets arrive again. The old outputs' late acknowledgements must not finish the new
    receipts, or a commit could pass messages whose handling has not even started."""
    app = App("proc")
    tasks = app.topic("proc.tasks", value=TaskRequested, partitions=1)
    out = app.topic("proc.out", value=TaskRequested, partitions=1)
    gate = asyncio.Event()

    @app.agent(tasks, concurrency=4)
    async def relay(task: TaskRequested, ctx: Context) -> None:
        if ctx.attempt == 1 and task.payload == "second time":
            await gate.wait()  # the new receipts are still being handled
        await ctx.send(out, task)

    registry = InMemoryRegistry()
    encode = AvroEncoder(registry, "proc.tasks-value", TaskRequested.avro_schema())
    sender = _HeldSender()
    stats = WorkerStats()
    handler = MessageHandler(
        app.agents["relay"],
        RecordDecoder(registry, TaskRequested),
        AtLeastOnceDelivery(sender, Encoders(registry)),
        stats,
        middleware=Chain(()),
    )
    processor = Processor(app.agents["relay"], handler, stats, on_fatal=pytest.fail)

    def items(payload: str) -> list[WorkItem]:
        value = encode(TaskRequested(task_id="t", capability="c", payload=payload))
        return [WorkItem(tasks.name, 0, o, f"k{o}".encode(), value, [], 0, len(value)) for o in range(3)]

    processor.accept(items("first time"))
    await asyncio.sleep(0)
    old = list(sender.pending)
    assert len(old) == 3 and processor.offsets.pending(tasks.name, 0) == 3
    processor.drop({(tasks.name, 0)})
    processor.forget({(tasks.name, 0)})  # revoked with the outputs unacknowledged

    processor.accept(items("second time"))  # assigned back: received again from the committed offset
    sender.acknowledge(old)
    await asyncio.sleep(0.01)
    assert processor.offsets.pending(tasks.name, 0) == 3, "late acknowledgements finished new receipts"
    assert processor.offsets.stale_completions == 3

    gate.set()
    await asyncio.sleep(0.01)
    sender.acknowledge(sender.pending[3:])
    assert await processor.finish_received(1.0) == 0
    assert processor.offsets.committable() == {(tasks.name, 0): 3}
