"""Follow one correlation id through a pipeline's topics: every message of that piece of work, dead
letters included, in causal order with per-hop latency.

A bounded scan: each partition is read from its start to its end as of the call, so the scan ends
even while producers keep writing. The end of a partition is where the consumer reports reaching it
(``enable.partition.eof``), not its high watermark minus one: on a transactional topic the last
offsets are commit markers, which no consumer ever receives. A topic that does not exist (a
dead-letter topic no worker has created yet) is scanned as empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streams import headers as hdr
from streams.config import Settings
from streams.errors import TopicError, TransportError
from streams.transport import clients

_STALL_SECONDS = 30.0

TP = tuple[str, int]


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


@dataclass
class Trace:
    """What a scan found: the hops in causal order, how many messages it read, and the topics it was
    asked to scan that do not exist."""

    hops: list[Hop]
    scanned: int
    missing: list[str]


def follow(
    settings: Settings,
    correlation_id: str,
    topics: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Trace:
    """The messages of ``correlation_id`` found in ``topics``, in causal order."""
    consumer = clients.scan_consumer(settings, "streams-trace", **{"enable.partition.eof": True})
    try:
        ranges, missing = _ranges(consumer, topics)
        total = sum(high - low for low, high in ranges.values())
        remaining = {tp for tp, (low, high) in ranges.items() if high > low}
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in sorted(remaining)])
        found: list[Hop] = []
        scanned = 0
        idle_since = time.monotonic()
        last_error = ""
        while remaining:
            batch: list[Any] = consumer.consume(1000, 0.5)
            if not batch and time.monotonic() - idle_since > _STALL_SECONDS:
                raise TransportError(
                    f"the scan stalled: nothing read for {_STALL_SECONDS:.0f} s from "
                    f"{len(remaining)} partition(s){last_error}",
                    retriable=True,
                )
            for message in batch:
                tp = (message.topic(), message.partition())
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        idle_since = time.monotonic()
                        remaining.discard(tp)
                    else:  # librdkafka retries these itself; shown if the scan stalls on them
                        last_error = f" (last error: {error.str()})"
                    continue
                idle_since = time.monotonic()
                scanned += 1
                if message.offset() + 1 >= ranges[tp][1]:
                    remaining.discard(tp)
                hop = hop_of(message, correlation_id)
                if hop is not None:
                    found.append(hop)
            if progress:
                progress(scanned, total)
    except KafkaException as exc:
        raise TransportError(f"trace scan failed: {exc.args[0].str()}", retriable=True) from exc
    finally:
        consumer.close()
    return Trace(causal_order(found), scanned, missing)


def hop_of(message: Any, correlation_id: str) -> Hop | None:
    """The hop of a consumed ``message`` if it belongs to ``correlation_id``, else None."""
    headers = message.headers() or []
    if hdr.get(headers, hdr.CORRELATION_ID) != correlation_id:
        return None
    key = message.key()
    return Hop(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        timestamp_ms=message.timestamp()[1],
        key=key.decode("utf-8", errors="replace") if key is not None else None,
        message_id=hdr.get(headers, hdr.MESSAGE_ID),
        causation_id=hdr.get(headers, hdr.CAUSATION_ID),
        # A dead letter keeps the failed message's headers, its sender's sent-by among them; the
        # agent that dead-lettered it is the one that sent this copy.
        sent_by=hdr.get(headers, hdr.DLQ_AGENT) or hdr.get(headers, hdr.SENT_BY),
        dead_letter_reason=hdr.get(headers, hdr.DLQ_REASON),
    )


def _ranges(consumer: Consumer, topics: Sequence[str]) -> tuple[dict[TP, tuple[int, int]], list[str]]:
    """Low and high watermark of every partition of ``topics``, and the topics that do not exist."""
    ranges: dict[TP, tuple[int, int]] = {}
    missing: list[str] = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if metadata is None or (
            metadata.error is not None and metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            missing.append(topic)
            continue
        if metadata.error is not None:
            raise TopicError(f"cannot read topic {topic}: {metadata.error.str()}")
        for partition in metadata.partitions:
            ranges[(topic, partition)] = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=15
            )
    return ranges, missing


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
