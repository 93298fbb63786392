"""One received message on its way through a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, eq=False)
class WorkItem:
    """A received Kafka message with what the scheduler and the offset tracker need (``LaneItem``).

    ``key`` is the raw key bytes: equal bytes are the same key, no decoding needed to order by it.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    message: Any  # confluent_kafka.Message
    size: int

    @classmethod
    def of(cls, message: Any) -> WorkItem:
        key = message.key()
        value = message.value()
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=key,
            message=message,
            size=len(value or b"") + len(key or b""),
        )
