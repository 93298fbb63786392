"""The Python ceiling: a hand-written confluent-kafka consume -> produce loop.

One consumer subscribed to every stage's input topic, one producer, one thread: the least Python a
consume-transform-produce pipeline can run. At-least-once: offsets are committed every 0.5 s, only
after ``flush()`` has confirmed every output produced so far. Producer settings match ``streams``'s
(idempotent, acks=all, linger 5 ms, lz4). The I/O scenario sleeps 10 ms per message in the loop,
like any sequential consumer. Option ``poll_timeout`` (seconds, 0.1 by default): how long one
``consume(500, ...)`` waits for a full batch; the ``raw-confluent-2ms`` row (latency) waits 2 ms.

Windows: the same loop counting samples in a dict per window start and key, the partition's stream
time beside it; a window is sent when stream time reaches its end plus grace. The counts live only in
memory: a restart would lose them (no state durability), which is why this row is the floor, not a peer.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from bench.contenders.common import (
    Config,
    StartMarker,
    WireCodec,
    complete,
    epoch_millis,
    relay,
    window_summary,
)

_COMMIT_INTERVAL = 0.5

Stage = tuple[WireCodec, Callable[[dict[str, Any]], dict[str, Any]], str, WireCodec]


def _stages(config: Config) -> dict[str, Stage]:
    """Input topic -> (decoder, transform, output topic, encoder), for the relay scenarios."""
    requested = config.schemas["TaskRequested"]
    completed = config.schemas["TaskCompleted"]
    ids = config.schema_ids
    if config.scenario == "pipeline":
        a, b, c, d = config.topics
        return {
            a: (WireCodec(requested, ids[a]), lambda t: relay(t, 1), b, WireCodec(requested, ids[b])),
            b: (WireCodec(requested, ids[b]), lambda t: relay(t, 2), c, WireCodec(requested, ids[c])),
            c: (WireCodec(requested, ids[c]), complete, d, WireCodec(completed, ids[d])),
        }
    a, b = config.topics
    return {a: (WireCodec(requested, ids[a]), complete, b, WireCodec(completed, ids[b]))}


class _Windows:
    """Tumbling-window counts per key, in memory; ``add`` returns the windows it closed, encoded."""

    def __init__(self, config: Config) -> None:
        self.decoder = WireCodec(config.schemas["MetricSample"], config.schema_ids[config.topics[0]])
        self.encoder = WireCodec(config.schemas["WindowSummary"], config.schema_ids[config.topics[1]])
        self.size = config.window_ms
        self.grace = config.grace_ms
        self.stream_time: dict[int, int] = {}  # partition -> highest event time seen
        self.open: dict[int, dict[int, dict[bytes, int]]] = defaultdict(dict)  # partition -> start -> counts

    def add(self, message: Message) -> list[tuple[bytes, bytes]]:
        partition = message.partition() or 0
        t = epoch_millis(self.decoder.decode(message.value())["observed_at"])
        stream_time = max(t, self.stream_time.get(partition, t))
        self.stream_time[partition] = stream_time
        windows = self.open[partition]
        start = t - t % self.size
        if start + self.size + self.grace > stream_time:  # else late: its window has closed
            counts = windows.setdefault(start, {})
            key = message.key() or b""
            counts[key] = counts.get(key, 0) + 1
        closed = []
        for start in sorted(s for s in windows if s + self.size + self.grace <= stream_time):
            for key, count in windows.pop(start).items():
                summary = window_summary(key.decode(), start, self.size, count)
                closed.append((key, self.encoder.encode(summary)))
        return closed


def main() -> None:
    config = Config.load()
    running = True

    def stop(_sig: int, _frame: Any) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    windows = _Windows(config) if config.scenario == "windows" else None
    stages = {} if windows else _stages(config)
    delay = config.io_delay if config.scenario == "io" else 0.0
    first_topic = config.topics[0]
    marker = StartMarker()
    poll_timeout = float(config.options.get("poll_timeout", 0.1))

    consumer = Consumer(
        {
            "bootstrap.servers": config.bootstrap,
            "group.id": f"{config.group}.loop",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": config.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    consumer.subscribe([first_topic] if windows else list(stages))
    positions: dict[tuple[str, int], int] = {}
    last_commit = time.monotonic()

    def produce(topic: str, value: bytes, key: bytes | None) -> None:
        while True:
            try:
                producer.produce(topic, value, key)
                return
            except BufferError:
                producer.poll(0.05)

    def commit() -> None:
        if not positions:
            return
        producer.flush()
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()], asynchronous=True
        )
        positions.clear()

    while running:
        for message in consumer.consume(num_messages=500, timeout=poll_timeout):
            if message.error() is not None:
                continue
            topic = message.topic() or ""
            if topic == first_topic:
                marker()
            if windows:
                for key, value in windows.add(message):
                    produce(config.topics[1], value, key)
            else:
                decoder, transform, out_topic, encoder = stages[topic]
                if delay:
                    time.sleep(delay)
                produce(out_topic, encoder.encode(transform(decoder.decode(message.value()))), message.key())
            positions[(topic, message.partition() or 0)] = (message.offset() or 0) + 1
        producer.poll(0)
        if time.monotonic() - last_commit >= _COMMIT_INTERVAL:
            commit()
            last_commit = time.monotonic()
    commit()
    producer.flush()
    consumer.close()


if __name__ == "__main__":
    main()
