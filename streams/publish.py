"""Publish typed events from code or from JSON, with identity and correlation headers set.

The value schema of a topic is the app's declaration when one is given, else the latest version
registered under the topic's subject, so any topic with a registered schema can be published to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace

from streams import headers as hdr
from streams.config import Settings
from streams.errors import SchemaError
from streams.serde.codec import AvroEncoder, encode_key
from streams.serde.record import Record
from streams.serde.registry import ConfluentRegistry, SchemaRegistry, subject_for
from streams.telemetry.tracing import configure_tracing, origin_trace_headers, producer_span
from streams.timestamps import epoch_millis
from streams.topics import Topic
from streams.transport import clients


@dataclass(frozen=True)
class Prepared:
    """An event encoded with its headers, ready to produce (:meth:`Publisher.prepare`)."""

    topic: str
    value: bytes
    key: bytes | None
    headers: hdr.Headers
    timestamp_ms: int | None
    message_id: str


class Publisher:
    """Encodes and produces events; call :meth:`flush` (or use it as a context manager) to confirm."""

    def __init__(self, settings: Settings | None = None, registry: SchemaRegistry | None = None) -> None:
        self.settings = settings or Settings()
        self._owns_registry = registry is None
        self.registry = registry or ConfluentRegistry(self.settings.registry_config())
        self._producer = clients.producer(self.settings)
        self._encoders: dict[str, AvroEncoder] = {}
        configure_tracing("streams-publisher")
        self._tracer = trace.get_tracer("streams")

    def encoder(self, topic: str | Topic[Any]) -> AvroEncoder:
        """The encoder of a topic: its declared model's schema, or the registry's latest for its subject."""
        name = topic if isinstance(topic, str) else topic.name
        encoder = self._encoders.get(name)
        if encoder is None:
            self._producer.require_topic(name, timeout=self.settings.kafka_timeout)
            if isinstance(topic, Topic):
                schema = topic.value.avro_schema()
            else:
                latest = self.registry.latest(subject_for(name))
                if latest is None:
                    raise SchemaError(
                        f"no schema registered for topic {name} (subject {subject_for(name)}); "
                        "declare it in an app and run `streams topics apply`"
                    )
                schema = latest.schema
            encoder = self._encoders[name] = AvroEncoder(self.registry, subject_for(name), schema)
        return encoder

    def prepare(
        self,
        topic: str | Topic[Any],
        value: Record | Mapping[str, Any],
        *,
        key: str | bytes | None = None,
        correlation_id: str | None = None,
        message_id: str | None = None,
        extra_headers: list[tuple[str, bytes]] | None = None,
        timestamp: datetime | None = None,
    ) -> Prepared:
        """One event encoded, with its identity and trace headers, ready to produce (:meth:`publish`
        takes the same arguments). Raises SerializationError on bad values."""
        encoder = self.encoder(topic)
        payload = encoder(value)
        name = topic if isinstance(topic, str) else topic.name
        message_headers = hdr.origin_headers(correlation_id, message_id)
        message_id = message_headers[0][1].decode()
        with producer_span(self._tracer, name, message_headers):
            message_headers += origin_trace_headers()
        message_headers += extra_headers or []
        return Prepared(
            topic=name,
            value=payload,
            key=encode_key(key),
            headers=message_headers,
            timestamp_ms=None if timestamp is None else epoch_millis(timestamp),
            message_id=message_id,
        )

    def publish(
        self,
        topic: str | Topic[Any],
        value: Record | Mapping[str, Any],
        *,
        key: str | bytes | None = None,
        correlation_id: str | None = None,
        message_id: str | None = None,
        extra_headers: list[tuple[str, bytes]] | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Encode and queue one event; returns its message id (new, or ``message_id`` to publish the
        same message again: idempotent consumers skip it). ``timestamp`` sets the record's timestamp
        (the event time of windows that read none from the event; default: now). Raises
        SerializationError on bad values."""
        event = self.prepare(
            topic,
            value,
            key=key,
            correlation_id=correlation_id,
            message_id=message_id,
            extra_headers=extra_headers,
            timestamp=timestamp,
        )
        self._producer.produce(
            event.topic, event.value, key=event.key, headers=event.headers, timestamp_ms=event.timestamp_ms
        )
        return event.message_id

    def flush(self, timeout: float = 30.0) -> None:
        self._producer.flush(timeout)

    @property
    def delivered(self) -> int:
        return self._producer.delivered

    def close(self) -> None:
        """Release the registry connection if this publisher opened it (queued messages are not flushed)."""
        if self._owns_registry:
            self.registry.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.flush()
        finally:
            self.close()
