"""Read a topic from the edge or the start and decode each message for display.

Tailing never joins a consumer group: it assigns every partition itself and commits nothing, so it
cannot disturb running agents. Messages that cannot be decoded are yielded with the reason, not skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition

from streams.config import Settings
from streams.errors import StreamsError, TopicError
from streams.headers import as_text
from streams.serde.codec import AvroDecoder
from streams.serde.registry import SchemaRegistry
from streams.transport import clients


@dataclass
class TailedMessage:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    headers: dict[str, str]
    value: dict[str, Any] | None
    schema_id: int | None = None
    error: str | None = None


def tail(
    settings: Settings,
    registry: SchemaRegistry,
    topic: str,
    *,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_timeout: float | None = None,
) -> Iterator[TailedMessage]:
    """Yield decoded messages until ``limit`` is reached or nothing arrives for ``idle_timeout`` seconds."""
    consumer = clients.scan_consumer(settings, "streams-tail", **{"enable.partition.eof": False})
    decoder = AvroDecoder(registry)
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=15)
        except KafkaException as exc:
            raise TopicError(f"cannot reach Kafka to read topic {topic}: {exc.args[0]}") from exc
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise TopicError(f"topic {topic} does not exist")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(meta.partitions)])
        seen = 0
        last_message = time.monotonic()
        while limit is None or seen < limit:
            message = consumer.poll(0.5)
            if message is None:
                if idle_timeout is not None and time.monotonic() - last_message > idle_timeout:
                    return
                continue
            error = message.error()
            if error is not None:
                raise TopicError(f"error reading {topic}: {error.str()}")
            last_message = time.monotonic()
            seen += 1
            yield _decode(message, decoder)
    finally:
        consumer.close()


def _decode(message: Any, decoder: AvroDecoder) -> TailedMessage:
    raw_key = message.key()
    key = raw_key.decode("utf-8", errors="replace") if raw_key is not None else None
    tailed = TailedMessage(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        timestamp_ms=message.timestamp()[1],
        key=key,
        headers=as_text(message.headers()),
        value=None,
    )
    try:
        tailed.schema_id, tailed.value = decoder.decode(message.value())
    except StreamsError as exc:
        tailed.error = f"{type(exc).__name__}: {exc}"
    return tailed
