"""Read the agent watch's topics into a :class:`~streams.board.snapshot.Board`, from their start, and
keep following them.

Like ``streams tail``, the reader joins no consumer group: it assigns every partition itself and
commits nothing, so any number of monitors can watch a cluster without disturbing it. It reads
committed records only (the watch writes in transactions). The status topic must exist (without it
there is nothing to show); the alert and workflow topics are read once they exist. Records that
cannot be decoded are counted, not hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from streams.board.snapshot import Board
from streams.config import Settings
from streams.errors import DeserializationError, TopicError, TransportError
from streams.events import AgentStatus, Alert, WorkflowCounts
from streams.serde.codec import RecordDecoder
from streams.serde.registry import SchemaRegistry
from streams.transport import clients
from streams.transport.records import delivered_to_end

_RECHECK_SECONDS = 5.0  # how often to look for a topic that did not exist yet
_BATCH = 500

TP = tuple[str, int]


@dataclass(frozen=True)
class BoardTopics:
    """The topics the agent watch writes (see :class:`~streams.monitoring.WatchSettings`)."""

    status: str
    alerts: str
    workflows: str


class BoardReader:
    """Fills :attr:`board` from ``topics``; call :meth:`open`, then :meth:`catch_up` and/or :meth:`poll`."""

    def __init__(self, settings: Settings, registry: SchemaRegistry, topics: BoardTopics) -> None:
        self.settings = settings
        self.topics = topics
        self.board = Board()
        self.problem: str | None = None  # the client's last transient complaint (a broker away), if any
        self._consumer: Any = None
        self._assigned: set[TP] = set()
        self._at_end: set[TP] = set()
        self._checked_at = 0.0
        status = RecordDecoder(registry, AgentStatus)
        alerts = RecordDecoder(registry, Alert)
        counts = RecordDecoder(registry, WorkflowCounts)
        self._apply: dict[str, Callable[[str | None, bytes | None], None]] = {
            topics.status: lambda key, value: self.board.status(
                key, None if value is None else status(value)
            ),
            topics.alerts: lambda key, value: None if value is None else self.board.alert(key, alerts(value)),
            topics.workflows: lambda key, value: self.board.workflow_counts(
                key, None if value is None else counts(value)
            ),
        }

    def open(self) -> None:
        """Connect and assign the topics that exist; raises if the cluster or the status topic is missing."""
        self._consumer = clients.scan_consumer(
            self.settings, "streams-monitor", **{"enable.partition.eof": True}
        )
        self._assign_new(required=True)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> BoardReader:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _assign_new(self, *, required: bool = False) -> None:
        self._checked_at = time.monotonic()
        try:
            metadata = self._consumer.list_topics(timeout=self.settings.kafka_timeout)
        except KafkaException as exc:
            error = exc.args[0]
            reason = error.str() if isinstance(error, KafkaError) else str(error)
            if not required:
                self.problem = f"cannot reach Kafka: {reason}"
                return
            raise TransportError(
                f"cannot reach Kafka at {self.settings.kafka_bootstrap_servers}: {reason}"
            ) from exc
        if required and self.topics.status not in metadata.topics:
            raise TopicError(
                f"topic {self.topics.status} does not exist: start the agent watch "
                "(streams run agents.watch:app) or name its status topic with --status-topic"
            )
        new = [
            (name, partition)
            for name in self._apply
            if name in metadata.topics and metadata.topics[name].error is None
            for partition in metadata.topics[name].partitions
            if (name, partition) not in self._assigned
        ]
        if new:
            self._consumer.incremental_assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in new])
            self._assigned.update(new)

    @property
    def caught_up(self) -> bool:
        """Whether every assigned partition has been read to its end (as of the last poll)."""
        return bool(self._assigned) and self._at_end >= self._assigned

    def poll(self, seconds: float) -> int:
        """Read for up to ``seconds``; returns how many records were read."""
        if self._consumer is None:
            raise RuntimeError("BoardReader.open() has not been called")
        missing = set(self._apply) - {name for name, _ in self._assigned}
        if missing and time.monotonic() - self._checked_at > _RECHECK_SECONDS:
            self._assign_new()
        deadline = time.monotonic() + seconds
        read = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return read
            messages = self._consumer.consume(_BATCH, min(left, 0.25))
            for message in messages:
                read += self._handle(message)
            behind = self._assigned - self._at_end
            if behind:
                self._at_end |= delivered_to_end(self._consumer, behind)

    def catch_up(self, timeout: float) -> bool:
        """Read until every partition is read to its end or ``timeout`` seconds passed; True if caught up."""
        deadline = time.monotonic() + timeout
        while not self.caught_up:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(left, 0.5))
        return True

    def _handle(self, message: Any) -> int:
        tp = (message.topic(), message.partition())
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._at_end.add(tp)
                return 0
            if error.fatal():
                raise TransportError(f"error reading {message.topic()}: {error.str()}")
            self.problem = error.str()  # a broker away, say: shown, and the client keeps trying
            return 0
        self.problem = None
        self._at_end.discard(tp)
        raw_key = message.key()
        key = raw_key.decode("utf-8", errors="replace") if raw_key is not None else None
        try:
            self._apply[message.topic()](key, message.value())
        except DeserializationError:
            self.board.undecodable += 1
        return 1


__all__ = ["BoardReader", "BoardTopics"]
