"""Reading a topic to its end while a transactional producer keeps writing to it, as the agent watch
writes its statuses: `streams monitor --once` (the board) must finish, although librdkafka's
end-of-partition event never comes while every fetch finds a record.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Producer

from streams import Settings
from streams.board.reader import BoardReader, BoardTopics
from streams.serde.registry import ConfluentRegistry
from tests.integration._kafka import create_topic

WRITE_EVERY_S = 0.02


@contextmanager
def steady_transactions(settings: Settings, topic: str) -> Iterator[None]:
    """One record per transaction every WRITE_EVERY_S seconds until the block ends."""
    stop = threading.Event()
    producer = Producer(
        {**settings.producer_config(), "transactional.id": f"steady-{uuid.uuid4().hex[:8]}", "linger.ms": 0}
    )
    producer.init_transactions(30)

    def write() -> None:
        while not stop.wait(WRITE_EVERY_S):
            producer.begin_transaction()
            producer.produce(topic, b"not a status", key=b"agent")
            producer.commit_transaction(30)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        time.sleep(1)  # a backlog, and writes going on
        yield
    finally:
        stop.set()
        thread.join(30)


def test_the_board_reads_to_the_end_of_a_topic_written_steadily(
    settings: Settings, registry: ConfluentRegistry
) -> None:
    prefix = f"board-{uuid.uuid4().hex[:8]}"
    topics = BoardTopics(f"{prefix}.status", f"{prefix}.alerts", f"{prefix}.workflows")
    for name in (topics.status, topics.alerts, topics.workflows):
        create_topic(settings, name)
    with steady_transactions(settings, topics.status), BoardReader(settings, registry, topics) as reader:
        started = time.monotonic()
        assert reader.catch_up(15), "not read to its end in 15 s"
        assert time.monotonic() - started < 10
        assert reader.board.undecodable > 10  # it did read the records written
