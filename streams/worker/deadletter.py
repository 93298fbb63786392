"""Dead letters: a message that cannot be handled goes, unchanged, to the agent's dead-letter topic with
the reason in headers, so nothing is skipped silently; :func:`replay` sends them back after a fix."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from streams.config import Settings
from streams.errors import TopicError, TransportError
from streams.headers import (
    DLQ_AGENT,
    DLQ_ATTEMPTS,
    DLQ_ERROR_CLASS,
    DLQ_FAILED_AT,
    DLQ_HEADERS,
    DLQ_REASON,
    DLQ_REPLAYED_FROM,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    Headers,
)
from streams.transport import clients
from streams.worker.items import WorkItem

_MAX_REASON = 2000


def dead_letter_headers(item: WorkItem, agent: str, error: BaseException, attempts: int) -> Headers:
    """The original headers (identity, correlation) followed by why and where it failed."""
    original = [(k, v) for k, v in item.headers if k not in DLQ_HEADERS and v is not None]
    reason = f"{error}" or type(error).__name__
    return [
        *original,
        (DLQ_REASON, reason[:_MAX_REASON].encode("utf-8", errors="replace")),
        (DLQ_ERROR_CLASS, f"{type(error).__module__}.{type(error).__qualname__}".encode()),
        (DLQ_SOURCE_TOPIC, item.topic.encode()),
        (DLQ_SOURCE_PARTITION, str(item.partition).encode()),
        (DLQ_SOURCE_OFFSET, str(item.offset).encode()),
        (DLQ_ATTEMPTS, str(attempts).encode()),
        (DLQ_AGENT, agent.encode()),
        (DLQ_FAILED_AT, str(int(time.time() * 1000)).encode()),
    ]


def replayed_letter(
    headers: list[tuple[str, Any]], dead_letter_topic: str, partition: int, offset: int, to: str | None = None
) -> tuple[str, Headers]:
    """Where a dead letter goes back to (its source topic, or ``to``) and its headers there: the
    original ones (identity and correlation kept), no dlq headers, and where it was replayed from."""
    target = to or _header(headers, DLQ_SOURCE_TOPIC)
    if target is None:
        raise TopicError(
            f"{dead_letter_topic}@{partition}:{offset} has no {DLQ_SOURCE_TOPIC} header; pass --to TOPIC"
        )
    kept = [
        (k, bytes(v)) for k, v in headers if k not in DLQ_HEADERS and k != DLQ_REPLAYED_FROM and v is not None
    ]
    kept.append((DLQ_REPLAYED_FROM, f"{dead_letter_topic}@{partition}:{offset}".encode()))
    return target, kept


@dataclass
class ReplayReport:
    replayed: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


def replay(
    settings: Settings,
    dead_letter_topic: str,
    *,
    to: str | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Re-publish dead letters to their source topic (or ``to``), unchanged but for the dlq headers.

    Replays what the topic holds when called, once: progress is committed under the consumer group
    ``<dead_letter_topic>.replay``, so running it again replays only letters that arrived since.
    Each replayed message keeps its message and correlation ids and gains ``dlq-replayed-from``.
    """
    consumer = clients.group_consumer(
        settings, f"{dead_letter_topic}.replay", **{"auto.offset.reset": "earliest"}
    )
    producer = clients.producer(settings)
    report = ReplayReport()
    try:
        metadata = consumer.list_topics(dead_letter_topic, timeout=15).topics.get(dead_letter_topic)
        if metadata is None or metadata.error is not None:
            raise TopicError(f"dead-letter topic {dead_letter_topic} does not exist")
        partitions = [TopicPartition(dead_letter_topic, p) for p in metadata.partitions]
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=15)}
        starts: dict[int, int] = {}
        remaining: dict[int, int] = {}  # partition -> end offset to replay up to
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=15)
            start = max(committed.get(tp.partition) or low, low)
            if high > start:
                starts[tp.partition], remaining[tp.partition] = start, high
        total = sum(remaining[p] - starts[p] for p in remaining)
        if limit is not None:
            total = min(total, limit)
        consumer.assign([TopicPartition(dead_letter_topic, p, starts[p]) for p in remaining])
        positions: dict[int, int] = {}
        while remaining and (limit is None or report.replayed < limit):
            message: Any = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise TopicError(f"error reading {dead_letter_topic}: {message.error().str()}")
            headers = message.headers() or []
            target, kept = replayed_letter(
                headers, dead_letter_topic, message.partition(), message.offset(), to
            )
            producer.produce(target, message.value(), message.key(), kept)
            report.replayed += 1
            report.by_topic[target] = report.by_topic.get(target, 0) + 1
            positions[message.partition()] = message.offset() + 1
            if message.offset() + 1 >= remaining[message.partition()]:
                del remaining[message.partition()]
            if progress:
                progress(report.replayed, total)
        try:
            producer.flush(30)
        except TransportError as exc:
            raise TransportError(
                f"replayed messages were not all delivered, so nothing was committed: {exc}", retriable=True
            ) from exc
        if positions:
            consumer.commit(
                offsets=[TopicPartition(dead_letter_topic, p, o) for p, o in positions.items()],
                asynchronous=False,
            )
    except KafkaException as exc:
        raise TransportError(
            f"replay of {dead_letter_topic} failed: {exc.args[0].str()}", retriable=True
        ) from exc
    finally:
        consumer.close()
    return report


def _header(headers: list[tuple[str, Any]], name: str) -> str | None:
    for key, value in headers:
        if key == name and value is not None:
            return bytes(value).decode()
    return None
