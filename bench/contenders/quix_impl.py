"""Peer: Quix Streams (confluent-kafka underneath). One StreamingDataFrame per stage in one
Application, bytes on the topics and the Avro wire codec done in ``apply``, so it does the same
decode/encode work as everyone else.

Quix's defaults otherwise: at-least-once, synchronous processing one message at a time per
partition (the I/O scenario sleeps 10 ms per message in sequence).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from quixstreams import Application  # type: ignore[import-not-found,unused-ignore]

from bench.contenders.common import Config, StartMarker, WireCodec, complete, relay


def build(config: Config) -> Application:
    app = Application(
        broker_address=config.bootstrap,
        consumer_group=f"{config.group}.quix",
        auto_offset_reset="earliest",
        loglevel="WARNING",
        auto_create_topics=False,
    )
    requested = config.schemas["TaskRequested"]
    completed = config.schemas["TaskCompleted"]
    marker = StartMarker()
    delay = config.io_delay

    def topic(name: str) -> Any:
        return app.topic(name, key_serializer="bytes", key_deserializer="bytes",
                         value_serializer="bytes", value_deserializer="bytes")

    def stage(
        source: str,
        sink: str,
        transform: Callable[[dict[str, Any]], dict[str, Any]],
        out_schema: dict[str, Any],
        *,
        first: bool,
        sleep: bool,
    ) -> None:
        decoder = WireCodec(requested, config.schema_ids[source])
        encoder = WireCodec(out_schema, config.schema_ids[sink])

        def work(value: bytes) -> bytes:
            if first:
                marker()
            if sleep:
                time.sleep(delay)  # Quix handlers are synchronous: this is how a model call looks
            return encoder.encode(transform(decoder.decode(value)))

        app.dataframe(topic(source)).apply(work).to_topic(topic(sink))

    t = config.topics
    if config.scenario == "pipeline":
        stage(t[0], t[1], lambda v: relay(v, 1), requested, first=True, sleep=False)
        stage(t[1], t[2], lambda v: relay(v, 2), requested, first=False, sleep=False)
        stage(t[2], t[3], complete, completed, first=False, sleep=False)
    else:
        stage(t[0], t[1], complete, completed, first=True, sleep=True)
    return app


def main() -> None:
    build(Config.load()).run()  # stops cleanly on SIGTERM


if __name__ == "__main__":
    main()
