"""Follow a topic from now on: every record written to any of its partitions after :meth:`start`.

For answers to requests: the follower takes each partition's end before the first request is sent,
so no answer can slip in between. read_committed, so answers of aborted transactions never arrive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from streams.config import Settings
from streams.errors import TopicError, TransportError
from streams.transport import clients
from streams.transport.records import consume_available

log = logging.getLogger("streams.client")

# What a partition created a moment ago answers until its leader is elected (librdkafka does not
# always flag these retriable on an offsets query).
_NO_LEADER_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    }
)


class TopicFollower:
    """Calls ``on_record`` on its own thread for every record of ``topic`` written after ``start()``."""

    def __init__(self, settings: Settings, topic: str, on_record: Callable[[Message], None]) -> None:
        self._settings = settings
        self._topic = topic
        self._on_record = on_record
        self._consumer = clients.scan_consumer(settings, "follower", **{"isolation.level": "read_committed"})
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"follow-{topic}", daemon=True)

    def start(self, since_ms: int | None = None) -> None:
        """Blocking: position every partition at its current end (or at its first record written at or
        after ``since_ms``), then follow on a thread. A topic created a moment ago may have no leader
        yet: retriable errors are tried again for up to ``kafka_timeout`` seconds."""
        deadline = time.monotonic() + self._settings.kafka_timeout
        while True:
            try:
                ends = self._ends(since_ms)
                break
            except KafkaException as exc:
                error = exc.args[0]
                transient = error.retriable() or error.code() in _NO_LEADER_YET
                if not transient or time.monotonic() >= deadline:
                    raise TransportError(
                        f"cannot reach {self._topic}: {error.str()}", retriable=True
                    ) from exc
                log.debug("positioning on %s: %s; trying again", self._topic, error.str())
                time.sleep(0.2)
        self._consumer.assign(ends)
        self._thread.start()

    def _ends(self, since_ms: int | None) -> list[TopicPartition]:
        timeout = self._settings.kafka_timeout
        metadata = self._consumer.list_topics(self._topic, timeout=timeout)
        found = metadata.topics.get(self._topic)
        if found is None or found.error is not None or not found.partitions:
            raise TopicError(f"topic {self._topic} does not exist; create it with `streams topics apply`")
        ends = []
        for partition in sorted(found.partitions):
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), timeout=timeout
            )
            ends.append(TopicPartition(self._topic, partition, high))
        if since_ms is not None:
            wanted = [TopicPartition(tp.topic, tp.partition, since_ms) for tp in ends]
            found_at = self._consumer.offsets_for_times(wanted, timeout=timeout)
            ends = [
                tp if at.offset < 0 else at  # nothing written since: start at the end
                for tp, at in zip(ends, found_at, strict=True)
            ]
        return ends

    def _follow(self) -> None:
        while not self._stopped.is_set():
            try:
                messages = consume_available(self._consumer, 500, 0.1)
            except KafkaException as exc:
                log.warning("following %s: %s", self._topic, exc.args[0].str())
                time.sleep(0.5)
                continue
            for message in messages:
                if message.error() is None:
                    self._on_record(message)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._consumer.close()
