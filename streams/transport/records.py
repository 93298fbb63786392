"""What the clients share: the keyword arguments of one produce() call, its error mapping, taking
what a consumer has without waiting for a full batch, and knowing when it has read a partition to
its end."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from streams.errors import TransportError


def produce_kwargs(
    value: bytes | None,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
    partition: int | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"key": key, "value": value, "headers": list(headers or ())}
    if partition is not None:
        kwargs["partition"] = partition
    if timestamp_ms is not None:
        kwargs["timestamp"] = timestamp_ms
    return kwargs


def produce_error(topic: str, exc: KafkaException) -> TransportError:
    error = exc.args[0]
    return TransportError(f"cannot produce to {topic}: {error.str()}", retriable=error.retriable())


def consume_available(consumer: Any, max_messages: int, timeout: float) -> list[Any]:
    """Up to ``max_messages``: waits at most ``timeout`` for the first, then takes only what has
    arrived already. librdkafka's ``consume(n, timeout)`` waits for all ``n`` or the whole timeout,
    so at low load every hop would cost the full timeout; this keeps a hop to the time the data takes,
    and still batches whatever is there under load."""
    first: list[Any] = consumer.consume(1, timeout)
    if not first or max_messages <= 1:
        return first
    rest: list[Any] = consumer.consume(max_messages - 1, 0)
    return first + rest


def delivered_to_end(consumer: Any, partitions: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    """Of the consumer's assigned ``partitions``, those it has delivered every record of, as far as
    its latest fetch responses know their ends (librdkafka's cached high watermarks; a partition no
    fetch has answered for yet is not known to be at its end). No broker request.

    Not librdkafka's end-of-partition event: that comes only when a fetch comes back empty, which a
    steady trickle of records never lets happen, so a reader waiting for it can wait forever."""
    tps = [TopicPartition(topic, partition) for topic, partition in partitions]
    if not tps:
        return set()
    ends: dict[tuple[str, int], int] = {}
    for tp in tps:
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high >= 0:  # else no fetch response yet
            ends[(tp.topic, tp.partition)] = high if high > low else -1  # empty: at its end anywhere
    if not ends:
        return set()
    # The position moves past transaction markers and aborted records, which no message shows.
    positions = consumer.position([TopicPartition(topic, partition) for topic, partition in ends])
    return {
        (tp.topic, tp.partition)
        for tp in positions
        if ends[(tp.topic, tp.partition)] < 0 or tp.offset >= ends[(tp.topic, tp.partition)]
    }
