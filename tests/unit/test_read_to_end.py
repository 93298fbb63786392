"""Knowing when a consumer has read a partition to its end without librdkafka's end-of-partition
event, which a steady trickle of records never lets come: the position against an end."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import TopicPartition

from streams.board.reader import BoardReader, BoardTopics
from streams.config import Settings
from streams.serde.registry import InMemoryRegistry
from streams.transport.records import delivered_to_end

pytestmark = pytest.mark.unit


class Consumer:
    """What librdkafka knows per partition: the low and high watermarks of its last fetch response
    (-1001 before any), and the position, the next offset it will deliver."""

    def __init__(self, **partitions: tuple[int, int, int]) -> None:
        self.known = {int(p[1:]): values for p, values in partitions.items()}  # p0=(low, high, position)
        self.batches: list[list[Any]] = []

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "what the fetches told already: no broker request"
        low, high, _ = self.known.get(tp.partition, (-1001, -1001, -1001))
        return low, high

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.known.get(tp.partition, (0, 0, -1001))[2])
            for tp in tps
        ]

    def consume(self, count: int, timeout: float) -> list[Any]:
        return self.batches.pop(0) if self.batches else []


def test_a_partition_is_delivered_to_its_end_once_the_position_reaches_the_known_high_watermark() -> None:
    consumer = Consumer(p0=(0, 100, 40), p1=(0, 7, 7), p2=(9, 9, -1001), p3=(0, 5, 6))
    tps = [("t", p) for p in range(5)]  # 4: no fetch response yet
    assert delivered_to_end(consumer, tps) == {("t", 1), ("t", 2), ("t", 3)}
    consumer.known[0] = (0, 100, 101)  # past a transaction marker at 100
    assert ("t", 0) in delivered_to_end(consumer, tps)
    assert delivered_to_end(consumer, []) == set()


def test_the_board_is_caught_up_without_an_end_of_partition_event() -> None:
    """The agent watch writes statuses steadily: `streams monitor --once` must not wait for a
    fetch that comes back empty."""
    reader = BoardReader(Settings(), InMemoryRegistry(), BoardTopics("status", "alerts", "workflows"))
    consumer = Consumer(p0=(0, 50, 10))
    reader._consumer = consumer
    reader._assigned = {("status", 0), ("alerts", 0), ("workflows", 0)}
    reader.poll(0.01)
    assert not reader.caught_up
    consumer.known[0] = (0, 52, 53)
    assert reader.catch_up(1.0)
