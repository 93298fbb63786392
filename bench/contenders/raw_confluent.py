"""The Python ceiling: a hand-written confluent-kafka consume -> produce loop.

One consumer subscribed to every stage's input topic, one producer, one thread: the least Python a
consume-transform-produce pipeline can run. At-least-once: offsets are committed every 0.5 s, only
after ``flush()`` has confirmed every output produced so far. Producer settings match ``streams``'s
(idempotent, acks=all, linger 5 ms, lz4). The I/O scenario sleeps 10 ms per message in the loop,
like any sequential consumer.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.contenders.common import Config, StartMarker, WireCodec, complete, relay

_COMMIT_INTERVAL = 0.5


def main() -> None:
    config = Config.load()
    running = True

    def stop(_sig: int, _frame: Any) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    requested = config.schemas["TaskRequested"]
    completed = config.schemas["TaskCompleted"]
    topics = config.topics
    # input topic -> (decoder, transform, output topic, encoder)
    stages: dict[str, tuple[WireCodec, Callable[[dict[str, Any]], dict[str, Any]], str, WireCodec]]
    if config.scenario == "pipeline":
        a, b, c, d = topics
        stages = {
            a: (WireCodec(requested, config.schema_ids[a]), lambda t: relay(t, 1), b,
                WireCodec(requested, config.schema_ids[b])),
            b: (WireCodec(requested, config.schema_ids[b]), lambda t: relay(t, 2), c,
                WireCodec(requested, config.schema_ids[c])),
            c: (WireCodec(requested, config.schema_ids[c]), complete, d,
                WireCodec(completed, config.schema_ids[d])),
        }
    else:
        a, b = topics
        stages = {a: (WireCodec(requested, config.schema_ids[a]), complete, b,
                      WireCodec(completed, config.schema_ids[b]))}
    delay = config.io_delay if config.scenario == "io" else 0.0
    first_topic = topics[0]
    marker = StartMarker()

    consumer = Consumer({
        "bootstrap.servers": config.bootstrap,
        "group.id": f"{config.group}.loop",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    producer = Producer({
        "bootstrap.servers": config.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    })
    consumer.subscribe(list(stages))
    positions: dict[tuple[str, int], int] = {}
    last_commit = time.monotonic()

    def commit() -> None:
        if not positions:
            return
        producer.flush()
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()], asynchronous=True
        )
        positions.clear()

    while running:
        for message in consumer.consume(num_messages=500, timeout=0.1):
            if message.error() is not None:
                continue
            topic = message.topic() or ""
            if topic == first_topic:
                marker()
            decoder, transform, out_topic, encoder = stages[topic]
            if delay:
                time.sleep(delay)
            payload = encoder.encode(transform(decoder.decode(message.value())))
            while True:
                try:
                    producer.produce(out_topic, payload, message.key())
                    break
                except BufferError:
                    producer.poll(0.05)
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
