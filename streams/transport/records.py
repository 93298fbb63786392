"""What both producers share: the keyword arguments of one produce() call and its error mapping."""

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
