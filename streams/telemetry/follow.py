"""Follow one correlation id through a pipeline's topics: every message of that piece of work, dead
letters included, in causal order with per-hop latency.

A bounded scan: each partition is read from its start up to its end offset as of the call, so the
scan ends even while producers keep writing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streams import headers as hdr
from streams.config import Settings
from streams.errors import TopicError, TransportError


@dataclass
class Hop:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    message_id: str | None
    causation_id: str | None
    sent_by: str | None
    dead_letter_reason: str | None = None
    latency_ms: int | None = None
    depth: int = 0
    children: list[Hop] = field(default_factory=list, repr=False)


def follow(
    settings: Settings,
    correlation_id: str,
    topics: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[Hop]:
    """The messages of ``correlation_id`` found in ``topics``, in causal order."""
    consumer = Consumer(settings.consumer_config(f"streams-trace-{uuid.uuid4().hex[:8]}"))
    try:
        ends = _end_offsets(consumer, topics)
        total = sum(ends.values())
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for (t, p), end in ends.items() if end > 0])
        remaining = {tp for tp, end in ends.items() if end > 0}
        found: list[Hop] = []
        scanned = 0
        idle_since = time.monotonic()
        while remaining:
            batch: list[Any] = consumer.consume(1000, 0.5)
            if not batch and time.monotonic() - idle_since > 30:
                raise TransportError("the scan stalled: no messages for 30 s", retriable=True)
            for message in batch:
                if message.error():
                    continue
                idle_since = time.monotonic()
                scanned += 1
                tp = (message.topic(), message.partition())
                if message.offset() + 1 >= ends[tp]:
                    remaining.discard(tp)
                headers = message.headers() or []
                if hdr.get(headers, hdr.CORRELATION_ID) != correlation_id:
                    continue
                key = message.key()
                found.append(
                    Hop(
                        topic=message.topic(),
                        partition=message.partition(),
                        offset=message.offset(),
                        timestamp_ms=message.timestamp()[1],
                        key=key.decode("utf-8", errors="replace") if key is not None else None,
                        message_id=hdr.get(headers, hdr.MESSAGE_ID),
                        causation_id=hdr.get(headers, hdr.CAUSATION_ID),
                        sent_by=hdr.get(headers, hdr.SENT_BY) or hdr.get(headers, hdr.DLQ_AGENT),
                        dead_letter_reason=hdr.get(headers, hdr.DLQ_REASON),
                    )
                )
            if progress:
                progress(scanned, total)
    except KafkaException as exc:
        raise TransportError(f"trace scan failed: {exc.args[0].str()}", retriable=True) from exc
    finally:
        consumer.close()
    return causal_order(found)


def _end_offsets(consumer: Consumer, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise TopicError(f"topic {topic} does not exist")
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)
            ends[(topic, partition)] = high
    return ends


def causal_order(hops: list[Hop]) -> list[Hop]:
    """Roots first, each followed by what it caused (depth-first, siblings by time).

    A dead letter keeps the id of the message that failed, so it hangs under that message."""
    by_id: dict[str, Hop] = {}
    for hop in sorted(hops, key=lambda h: h.timestamp_ms):
        if hop.message_id and hop.dead_letter_reason is None:
            by_id.setdefault(hop.message_id, hop)
    roots: list[Hop] = []
    for hop in sorted(hops, key=lambda h: (h.timestamp_ms, h.topic, h.offset)):
        if hop.dead_letter_reason is not None and hop.message_id in by_id:
            parent: Hop | None = by_id[hop.message_id]
        else:
            parent = by_id.get(hop.causation_id or "")
        if parent is None or parent is hop:
            roots.append(hop)
        else:
            parent.children.append(hop)
            hop.latency_ms = hop.timestamp_ms - parent.timestamp_ms
    ordered: list[Hop] = []

    def visit(hop: Hop, depth: int) -> None:
        hop.depth = depth
        ordered.append(hop)
        for child in hop.children:
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    return ordered
