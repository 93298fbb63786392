"""What the clients share: the keyword arguments of one produce() call, its error mapping, and taking
what a consumer has without waiting for a full batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaException

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
