"""A synchronous producer wrapper: idempotent, never drops on a full queue, surfaces delivery failures.

Owns: librdkafka's local queue and delivery reports. Must never encode values (serde does that).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as _KafkaProducer

from streams.errors import TopicError, TransportError
from streams.transport.records import produce_error, produce_kwargs


class Producer:
    """Produces raw bytes. A full local queue blocks (serving delivery reports) instead of failing."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = _KafkaProducer(config)
        self._lock = threading.Lock()
        self._failures: list[str] = []
        self.delivered = 0

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        with self._lock:
            if error is None:
                self.delivered += 1
            else:
                self._failures.append(error.str())

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        kwargs = produce_kwargs(value, key, headers, partition, timestamp_ms)
        while True:
            try:
                self._producer.produce(topic, on_delivery=self._on_delivery, **kwargs)
                break
            except BufferError:
                # Queue full: wait for in-flight deliveries instead of dropping the message.
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise produce_error(topic, exc) from exc
        self._producer.poll(0)

    def require_topic(self, topic: str, timeout: float = 15.0) -> None:
        """Fail fast on a missing topic: brokers without auto-creation would hold its messages until
        ``message.timeout.ms`` and then drop them."""
        try:
            metadata = self._producer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise TransportError(
                f"cannot reach Kafka to look up topic {topic}: {exc.args[0].str()}", retriable=True
            ) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise TopicError(f"topic {topic} does not exist; create it with `streams topics apply`")

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every queued message; raise TransportError if any was not delivered."""
        remaining = self._producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if remaining:
            raise TransportError(
                f"{remaining} message(s) still undelivered after {timeout:.0f}s (is the broker reachable?)",
                retriable=True,
            )
        if failures:
            raise TransportError(f"{len(failures)} message(s) failed delivery: {failures[0]}")
