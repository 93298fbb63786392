"""One received message on its way through a worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, eq=False)
class WorkItem:
    """A received message with what the scheduler, the offset tracker and the handler need
    (``LaneItem``). Plain data, so the in-memory twin builds the same items the broker's messages give.

    ``key`` is the raw key bytes: equal bytes are the same key, no decoding needed to order by it.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]  # as the client gives them: a value may be None
    timestamp_ms: int
    size: int

    @classmethod
    def of(cls, message: Any) -> WorkItem:
        """From a confluent-kafka ``Message``."""
        key = message.key()
        value = message.value()
        # Positional: built once per received message, where keyword arguments cost a third more.
        return cls(
            message.topic(),
            message.partition(),
            message.offset(),
            key,
            value,
            message.headers() or (),
            message.timestamp()[1],
            len(value or b"") + len(key or b""),
        )
