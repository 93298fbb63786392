"""A follower positions itself on a topic created a moment ago: a partition without a leader yet is
tried again, not reported to the caller as a failure."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams import Settings
from streams.errors import TransportError
from streams.transport import follower as follower_module
from streams.transport.follower import TopicFollower

pytestmark = pytest.mark.unit


class FakeConsumer:
    def __init__(
        self, failures: int, retriable: bool = True, code: int = KafkaError.NOT_LEADER_FOR_PARTITION
    ) -> None:
        self.failures = failures
        self.retriable = retriable
        self.code = code
        self.assigned: list[TopicPartition] = []

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None, 1: None})})

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        if self.failures:
            self.failures -= 1
            error = KafkaError(self.code, "not leader", retriable=self.retriable)
            raise KafkaException(error)
        return 0, 10 + tp.partition

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = tps

    def consume(self, n: int, timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def _follower(monkeypatch: pytest.MonkeyPatch, consumer: FakeConsumer) -> TopicFollower:
    monkeypatch.setattr(follower_module.clients, "scan_consumer", lambda *a, **k: consumer)
    return TopicFollower(Settings(kafka_timeout=2), "fresh", lambda message: None)


@pytest.mark.parametrize("flagged", [True, False], ids=["flagged-retriable", "not-flagged"])
def test_a_partition_without_a_leader_yet_is_tried_again(
    monkeypatch: pytest.MonkeyPatch, flagged: bool
) -> None:
    consumer = FakeConsumer(failures=3, retriable=flagged)
    follower = _follower(monkeypatch, consumer)
    follower.start()
    try:
        assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, 10), (1, 11)]
    finally:
        follower.stop()


def test_a_lasting_or_final_error_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TransportError, match="cannot reach fresh: not leader"):
        _follower(
            monkeypatch, FakeConsumer(failures=1, retriable=False, code=KafkaError.TOPIC_AUTHORIZATION_FAILED)
        ).start()
    with pytest.raises(TransportError, match="cannot reach fresh"):
        _follower(monkeypatch, FakeConsumer(failures=1_000)).start()  # past kafka_timeout
