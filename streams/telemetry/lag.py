"""Consumer-group lag as the broker sees it: each group's committed offsets against partition ends.

This is the outside view (``streams lag``), for groups whose workers may be anywhere or nowhere; it
asks the cluster with an admin client and never joins a group. The end of a partition is its last
stable offset (``read_committed``), the furthest a reading agent can get, so open transactions do
not count as lag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.config import Settings
from streams.errors import TopicError, TransportError


@dataclass(frozen=True)
class PartitionLag:
    """One partition of one group; ``committed`` is None when the group never committed there."""

    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int | None:
        if self.committed is None:
            return None
        return max(0, self.end - self.committed)


class LagReader:
    """Reads committed offsets and partition ends with one admin client."""

    def __init__(self, settings: Settings, timeout: float = 15.0) -> None:
        self._admin = AdminClient(settings.admin_config())
        self._timeout = timeout

    def lag(self, groups: Mapping[str, Sequence[str] | None]) -> list[PartitionLag]:
        """Lag per partition of each group, sorted by group, topic and partition.

        With topics named for a group, every partition of those topics is listed (committed or not);
        with None, the partitions the group has committed offsets for.
        """
        committed = {group: self._committed(group) for group in groups}
        wanted: dict[str, set[tuple[str, int]]] = {}
        for group, topics in groups.items():
            if topics is None:
                wanted[group] = set(committed[group])
            else:
                wanted[group] = {(t, p) for t in topics for p in self._partitions(t)}
        ends = self._ends({tp for tps in wanted.values() for tp in tps})
        return [
            PartitionLag(
                group, topic, partition, committed[group].get((topic, partition)), ends[(topic, partition)]
            )
            for group in sorted(wanted)
            for topic, partition in sorted(wanted[group])
        ]

    def _committed(self, group: str) -> dict[tuple[str, int], int]:
        """The group's committed positions; an unknown group simply has none."""
        futures = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=self._timeout
        )
        try:
            result = futures[group].result(timeout=self._timeout)
        except KafkaException as exc:
            raise TransportError(f"cannot read committed offsets of group {group}: {exc.args[0]}") from exc
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions or []
            if tp.error is None and tp.offset >= 0
        }

    def _partitions(self, topic: str) -> list[int]:
        try:
            metadata = self._admin.list_topics(topic, timeout=self._timeout)
        except KafkaException as exc:
            raise TransportError(f"cannot reach Kafka to read topic {topic}: {exc.args[0]}") from exc
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            raise TopicError(f"topic {topic} does not exist")
        return sorted(meta.partitions)

    def _ends(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # confluent-kafka ships no annotation
        request: dict[Any, Any] = {TopicPartition(t, p): latest for t, p in partitions}
        if not request:
            return {}
        futures = self._admin.list_offsets(
            request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=self._timeout
        )
        ends: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result(timeout=self._timeout).offset
            except KafkaException as exc:
                raise TransportError(
                    f"cannot read the end of {tp.topic}[{tp.partition}]: {exc.args[0]}"
                ) from exc
        return ends
