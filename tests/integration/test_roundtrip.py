"""Typed events through the real broker and registry: publish from code, read back decoded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams import App, Publisher, Settings
from streams.errors import SchemaError, SerializationError
from streams.events import TaskRequested
from streams.headers import CORRELATION_ID, MESSAGE_ID
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail
from tests.integration._kafka import create_topic, message_count, produce_raw


def test_published_events_read_back_typed_with_identity_headers(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    app = App("roundtrip", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=3)
    from streams.admin import TopicAdmin

    TopicAdmin(settings, registry).apply([tasks])
    deadline = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    sent = [
        TaskRequested(task_id=f"t{i}", capability="research", payload=f'{{"n": {i}}}', deadline=deadline)
        for i in range(20)
    ]
    with Publisher(settings, registry) as publisher:
        ids = [
            publisher.publish(tasks, task, key=task.task_id, correlation_id="corr-1", timestamp=deadline)
            for task in sent
        ]
    assert len(set(ids)) == 20

    got = list(tail(settings, registry, topic_name, from_beginning=True, limit=20, idle_timeout=20))
    assert len(got) == 20
    assert all(m.error is None for m in got)
    by_key = {m.key: m for m in got}
    for task, message_id in zip(sent, ids, strict=True):
        message = by_key[task.task_id]
        assert message.value is not None
        assert TaskRequested.from_avro(message.value) == task
        assert message.headers[MESSAGE_ID] == message_id
        assert message.headers[CORRELATION_ID] == "corr-1"
        assert message.timestamp_ms == int(deadline.timestamp() * 1000), "the record timestamp asked for"


def test_bad_value_is_refused_and_nothing_is_sent(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    create_topic(settings, topic_name)
    publisher = Publisher(settings, registry)
    topic = App("bad", settings).topic(topic_name, value=TaskRequested, partitions=1)
    with pytest.raises(SerializationError, match="priority"):
        publisher.publish(topic, {"task_id": "1", "capability": "c", "payload": "{}", "priority": "high"})
    publisher.flush()
    assert message_count(settings, topic_name) == 0


def test_publishing_by_name_needs_a_registered_schema(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    create_topic(settings, topic_name)
    with pytest.raises(SchemaError, match="no schema registered"):
        Publisher(settings, registry).publish(topic_name, {"a": 1})


def test_undecodable_messages_are_shown_with_the_reason_not_skipped(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    create_topic(settings, topic_name)
    produce_raw(settings, topic_name, b"not avro at all", key=b"k1")
    produce_raw(settings, topic_name, b"\x00\x7f\xff\xff\xf0body", key=b"k2")  # unknown schema id
    got = list(tail(settings, registry, topic_name, from_beginning=True, limit=2, idle_timeout=20))
    assert [m.key for m in got] == ["k1", "k2"]
    assert got[0].error is not None and "magic byte" in got[0].error
    assert got[1].error is not None and "unknown" in got[1].error
