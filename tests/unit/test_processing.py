"""The processor (lanes, offsets, drains) driven directly, as the twin and the worker drive it."""

import pytest

from streams import App, Context
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
