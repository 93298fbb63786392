"""Schema evolution through the real registry under its default BACKWARD rule."""

from __future__ import annotations

import pytest

from streams import Settings
from streams.errors import SchemaIncompatibleError
from streams.serde.codec import AvroDecoder, AvroEncoder
from streams.serde.registry import ConfluentRegistry, subject_for
from streams.tail import tail
from streams.transport.producer import Producer
from tests.integration._kafka import create_topic, raw_values

V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "test.evolution",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"}],
}
V2_COMPATIBLE = {
    **V1,
    "fields": [*V1["fields"], {"name": "currency", "type": "string", "default": "EUR"}],  # type: ignore[list-item]
}
V2_INCOMPATIBLE = {
    **V1,
    "fields": [*V1["fields"], {"name": "customer", "type": "string"}],  # type: ignore[list-item]
}


def test_incompatible_version_is_refused_and_compatible_one_is_read_by_old_consumers(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    subject = subject_for(topic_name)
    v1_id = registry.register(subject, V1)

    with pytest.raises(SchemaIncompatibleError, match="incompatible"):
        registry.register(subject, V2_INCOMPATIBLE)

    v2_id = registry.register(subject, V2_COMPATIBLE)
    assert v2_id != v1_id
    latest = registry.latest(subject)
    assert latest is not None and latest.schema_id == v2_id

    create_topic(settings, topic_name)
    producer = Producer(settings.producer_config())
    producer.produce(topic_name, AvroEncoder(registry, subject, V1)({"id": "a", "amount": 1}))
    producer.produce(
        topic_name, AvroEncoder(registry, subject, V2_COMPATIBLE)({"id": "b", "amount": 2, "currency": "USD"})
    )
    producer.flush()

    raw = list(tail(settings, registry, topic_name, from_beginning=True, limit=2, idle_timeout=20))
    assert [m.schema_id for m in raw] == [v1_id, v2_id]

    # An old consumer (reader schema v1) reads both; a new one (v2) fills the default for old data.
    old_reader = AvroDecoder(registry, V1)
    new_reader = AvroDecoder(registry, V2_COMPATIBLE)
    payloads = raw_values(settings, topic_name, 2)
    assert [old_reader.decode(p)[1] for p in payloads] == [{"id": "a", "amount": 1}, {"id": "b", "amount": 2}]
    assert [new_reader.decode(p)[1] for p in payloads] == [
        {"id": "a", "amount": 1, "currency": "EUR"},
        {"id": "b", "amount": 2, "currency": "USD"},
    ]
