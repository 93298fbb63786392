"""Make the cluster match topic declarations: create what is missing, report what differs, register schemas.

``apply`` is idempotent: running it again on an unchanged cluster reports every topic as up to date.
It never deletes topics or lowers partition counts, and changes an existing topic's settings only when
asked (``alter=True``) and only where Kafka allows it (adding partitions, topic configs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from streams.config import Settings
from streams.errors import ConfigError, TopicError
from streams.serde.registry import SchemaRegistry
from streams.topics import Topic
from streams.transport import clients

Action = Literal["created", "up to date", "differs", "altered", "would create"]


@dataclass
class TopicReport:
    topic: str
    action: Action
    differences: list[str] = field(default_factory=list)
    schema_id: int | None = None


def _distinct(topics: Iterable[Topic[Any]]) -> list[Topic[Any]]:
    """Each topic once: a runner's own topics (heartbeats) may also be an app's, and a request that
    names a topic twice is refused by the broker (and crashes some client versions reading the answer)."""
    found: dict[str, Topic[Any]] = {}
    for topic in topics:
        known = found.setdefault(topic.name, topic)
        if known != topic:
            raise ConfigError(f"topic {topic.name} is declared twice, differently: {known} and {topic}")
    return list(found.values())


class TopicAdmin:
    def __init__(self, settings: Settings, registry: SchemaRegistry | None, timeout: float = 30.0) -> None:
        self._admin = clients.admin(settings)
        self._registry = registry
        self._timeout = timeout

    def broker_count(self) -> int:
        return len(self._metadata().brokers)

    def apply(
        self,
        topics: Iterable[Topic[Any]],
        *,
        alter: bool = False,
        dry_run: bool = False,
        on_report: Callable[[TopicReport], None] | None = None,
    ) -> list[TopicReport]:
        topics = _distinct(topics)
        metadata = self._metadata()
        default_replication = min(3, max(1, len(metadata.brokers)))
        reports: list[TopicReport] = []
        missing = [t for t in topics if t.name not in metadata.topics]
        if missing and not dry_run:
            self._create(missing, default_replication)
        for topic in topics:
            if topic in missing:
                report = TopicReport(topic.name, "would create" if dry_run else "created")
            else:
                report = self._compare(topic, metadata.topics[topic.name], default_replication)
                if report.differences and alter and not dry_run:
                    self._alter(topic, metadata.topics[topic.name])
                    report = self._await_match(topic, default_replication, report.differences)
            if self._registry is not None and not dry_run:
                report.schema_id = self._registry.register(topic.value_subject, topic.value.avro_schema())
            reports.append(report)
            if on_report:
                on_report(report)
        return reports

    def ensure_untyped(
        self, partitions_by_name: dict[str, int], config: dict[str, str] | None = None
    ) -> list[str]:
        """Create missing topics that carry raw bytes (dead letters, changelogs); returns those created."""
        metadata = self._metadata()
        replication = min(3, max(1, len(metadata.brokers)))
        missing = {n: p for n, p in partitions_by_name.items() if n not in metadata.topics}
        if not missing:
            return []
        new = [
            NewTopic(n, num_partitions=p, replication_factor=replication, config=dict(config or {}))
            for n, p in missing.items()
        ]
        for name, future in self._admin.create_topics(new, operation_timeout=self._timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise TopicError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
        for name, partitions in missing.items():
            self._await_partitions(name, partitions)
        return sorted(missing)

    def _metadata(self) -> Any:
        try:
            return self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise TopicError(f"cannot reach Kafka to read topic metadata: {exc.args[0]}") from exc

    def _create(self, topics: list[Topic[Any]], default_replication: int) -> None:
        new = [
            NewTopic(
                t.name,
                num_partitions=t.partitions,
                replication_factor=t.replication or default_replication,
                config=t.broker_config(),
            )
            for t in topics
        ]
        for name, future in self._admin.create_topics(new, operation_timeout=self._timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                error = exc.args[0]
                # Another process created it between our metadata read and now: same outcome.
                if error.name() != "TOPIC_ALREADY_EXISTS":
                    raise TopicError(f"cannot create topic {name}: {error.str()}") from exc
        for topic in topics:
            self._await_partitions(topic.name, topic.partitions)

    def _await_partitions(self, name: str, partitions: int) -> None:
        """Wait until metadata shows every partition with a leader, so the next produce or apply sees it.

        The admin call returns when the controller has accepted the change, before brokers' metadata
        caches catch up.
        """
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            meta = self._admin.list_topics(name, timeout=self._timeout).topics.get(name)
            if (
                meta is not None
                and meta.error is None
                and len(meta.partitions) >= partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                return
            time.sleep(0.1)
        raise TopicError(f"topic {name} has no leader for all {partitions} partitions after {self._timeout}s")

    def _compare(self, topic: Topic[Any], meta: Any, default_replication: int) -> TopicReport:
        differences: list[str] = []
        partitions = len(meta.partitions)
        if partitions != topic.partitions:
            differences.append(f"partitions {partitions} (declared {topic.partitions})")
        replication = min((len(p.replicas) for p in meta.partitions.values()), default=0)
        wanted_replication = topic.replication or default_replication
        if replication != wanted_replication:
            differences.append(f"replication {replication} (declared {wanted_replication})")
        actual = self._configs(topic.name)
        for key, value in topic.broker_config().items():
            if actual.get(key) != value:
                differences.append(f"{key}={actual.get(key)} (declared {value})")
        return TopicReport(topic.name, "differs" if differences else "up to date", differences)

    def _await_match(self, topic: Topic[Any], default_replication: int, changed: list[str]) -> TopicReport:
        """Re-read the topic until the alteration shows: brokers apply config changes asynchronously."""
        deadline = time.monotonic() + self._timeout
        while True:
            meta = self._admin.list_topics(topic.name, timeout=self._timeout).topics[topic.name]
            report = self._compare(topic, meta, default_replication)
            if not report.differences:
                return TopicReport(topic.name, "altered", changed)
            # Replication is not something apply changes: no point waiting for it.
            waiting = [d for d in report.differences if not d.startswith("replication")]
            if not waiting or time.monotonic() > deadline:
                return report
            time.sleep(0.2)

    def _configs(self, name: str) -> dict[str, str]:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            entries = self._admin.describe_configs([resource])[resource].result(timeout=self._timeout)
        except KafkaException as exc:
            raise TopicError(f"cannot describe topic {name}: {exc.args[0]}") from exc
        return {key: entry.value for key, entry in entries.items()}

    def _alter(self, topic: Topic[Any], meta: Any) -> None:
        current = len(meta.partitions)
        if topic.partitions < current:
            raise TopicError(
                f"topic {topic.name} has {current} partitions; Kafka cannot reduce them to {topic.partitions}"
            )
        try:
            if topic.partitions > current:
                futures = self._admin.create_partitions([NewPartitions(topic.name, topic.partitions)])
                futures[topic.name].result(timeout=self._timeout)
                self._await_partitions(topic.name, topic.partitions)
            resource = ConfigResource(
                ConfigResource.Type.TOPIC,
                topic.name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                    for k, v in topic.broker_config().items()
                ],
            )
            self._admin.incremental_alter_configs([resource])[resource].result(timeout=self._timeout)
        except KafkaException as exc:
            raise TopicError(f"cannot alter topic {topic.name}: {exc.args[0]}") from exc
