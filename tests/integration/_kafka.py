"""Small direct-Kafka helpers for assertions, independent of the code under test."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import Settings


def create_topic(settings: Settings, name: str, partitions: int = 1) -> None:
    admin = AdminClient(settings.admin_config())
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result()


def message_count(settings: Settings, topic: str) -> int:
    """Messages in ``topic`` by its watermarks; retries while a new topic's leaders settle."""
    consumer = Consumer(settings.consumer_config(f"count-{uuid.uuid4().hex}"))
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                metadata = consumer.list_topics(topic, timeout=10).topics[topic]
                total = 0
                for partition in metadata.partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                    total += high - low
                return total
            except KafkaException as exc:
                if not exc.args[0].retriable() and exc.args[0].name() != "NOT_LEADER_FOR_PARTITION":
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def produce_raw(settings: Settings, topic: str, value: bytes | None, key: bytes | None = None) -> None:
    producer = Producer(settings.producer_config())
    producer.produce(topic, value=value, key=key)
    assert producer.flush(10) == 0


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def raw_values(settings: Settings, topic: str, count: int, timeout: float = 20.0) -> list[bytes]:
    """The first ``count`` message values of a one-partition topic, as bytes."""
    consumer = Consumer(settings.consumer_config(f"raw-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    assert len(values) == count, f"read {len(values)} of {count} messages from {topic}"
    return values
