"""Knowing when a consumer has read a partition to its end without librdkafka's end-of-partition
event, which a steady trickle of records never lets come: the position against an end."""

from __future__ import annotations

import pytest

from streams.board.reader import BoardReader, BoardTopics
from streams.config import Settings
from streams.serde.registry import InMemoryRegistry
from streams.transport.records import delivered_to_end
from tests.unit._fetched import FetchedConsumer as Consumer

pytestmark = pytest.mark.unit


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
