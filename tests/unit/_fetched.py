"""A fake librdkafka consumer that knows what its fetches told it, for the tests of reading a
partition to its end."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition


class FetchedConsumer:
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
