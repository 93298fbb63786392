"""`apply` against the real broker: create, idempotence, drift report, alter, schema registration."""

from __future__ import annotations

import pytest

from streams import ConfigError, Settings, Topic
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested
from streams.serde.registry import ConfluentRegistry


def test_apply_creates_then_reports_up_to_date(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    admin = TopicAdmin(settings, registry)
    topic = Topic(topic_name, value=TaskRequested, partitions=4, retention_ms=3_600_000)
    first = admin.apply([topic])
    assert [r.action for r in first] == ["created"]
    assert first[0].schema_id is not None
    second = admin.apply([topic])
    assert [(r.action, r.differences) for r in second] == [("up to date", [])]
    assert second[0].schema_id == first[0].schema_id
    latest = registry.latest(topic.value_subject)
    assert latest is not None and latest.schema == TaskRequested.avro_schema()


def test_apply_reports_differences_and_alters_when_asked(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    admin = TopicAdmin(settings, registry)
    admin.apply([Topic(topic_name, value=TaskCompleted, partitions=2)])
    wider = Topic(topic_name, value=TaskCompleted, partitions=5, cleanup_policy="compact")
    report = admin.apply([wider], dry_run=True)[0]
    assert report.action == "differs"
    assert "partitions 2 (declared 5)" in report.differences
    assert "cleanup.policy=delete (declared compact)" in report.differences
    assert admin.apply([wider], alter=True)[0].action == "altered"
    after = admin.apply([wider])[0]
    assert (after.action, after.differences) == ("up to date", [])


def test_dry_run_creates_nothing(settings: Settings, registry: ConfluentRegistry, topic_name: str) -> None:
    admin = TopicAdmin(settings, registry)
    assert admin.apply([Topic(topic_name, value=TaskRequested)], dry_run=True)[0].action == "would create"
    assert admin.apply([Topic(topic_name, value=TaskRequested)], dry_run=True)[0].action == "would create"


def test_a_topic_declared_twice_alike_is_applied_once_and_differently_is_refused(
    settings: Settings, registry: ConfluentRegistry, topic_name: str
) -> None:
    admin = TopicAdmin(settings, registry)
    topic = Topic(topic_name, value=TaskRequested, partitions=3)
    # One create request naming the topic twice is refused by the broker ("Duplicate topic name").
    assert [r.action for r in admin.apply([topic, Topic(topic_name, value=TaskRequested, partitions=3)])] == [
        "created"
    ]
    with pytest.raises(ConfigError, match="declared twice, differently"):
        admin.apply([topic, Topic(topic_name, value=TaskRequested, partitions=4)])
