"""Peer: Quix Streams (confluent-kafka underneath). One StreamingDataFrame per stage in one
Application. Two ways to read and write the Avro values, chosen by the ``serde`` option:

- ``registry`` (row ``quix``): Quix's own ``AvroDeserializer`` / ``AvroSerializer`` given a
  ``SchemaRegistryClientConfig``, as a Quix user reaches the schema registry. Quix hands the work to
  confluent-kafka's registry serializers (writer schema looked up by id and cached, the serializer's
  schema registered under the topic's subject on first use, its defaults otherwise).
- ``fastavro`` (row ``quix-fastavro``): bytes on the topics and the shared Avro wire codec
  (fastavro schemaless plus the 5-byte header) done in ``apply``, as a careful hand-written loop does.

Quix's defaults otherwise: at-least-once, synchronous processing one message at a time per
partition (the I/O scenario sleeps 10 ms per message in sequence).

Windows: ``tumbling_window(...).count().final()`` at Quix's defaults: window state in RocksDB (under
the run's state directory) backed by changelog topics it creates itself, windows closed per key. Values
are decoded by the topic's deserializer there (the registry one, or the shared codec wrapped as a Quix
deserializer), because the timestamp extractor needs the decoded value (event time is ``observed_at``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from quixstreams import Application  # type: ignore[import-not-found,unused-ignore]
from quixstreams.models.serializers import (  # type: ignore[import-not-found,unused-ignore]
    Deserializer,
    SerializationContext,
    Serializer,
)
from quixstreams.models.serializers.avro import (  # type: ignore[import-not-found,unused-ignore]
    AvroDeserializer,
    AvroSerializer,
)
from quixstreams.models.serializers.schema_registry import (  # type: ignore[import-not-found,unused-ignore]
    SchemaRegistryClientConfig,
)

from bench.contenders.common import (
    Config,
    StartMarker,
    WireCodec,
    complete,
    epoch_millis,
    relay,
    window_summary,
)


class _WireDeserializer(Deserializer):  # type: ignore[misc,unused-ignore]
    def __init__(self, codec: WireCodec) -> None:
        super().__init__()
        self._codec = codec

    def __call__(self, value: bytes, ctx: SerializationContext) -> dict[str, Any]:
        return self._codec.decode(value)


class _WireSerializer(Serializer):  # type: ignore[misc,unused-ignore]
    def __init__(self, codec: WireCodec) -> None:
        self._codec = codec

    def __call__(self, value: dict[str, Any], ctx: SerializationContext) -> bytes:
        return self._codec.encode(value)


def build(config: Config) -> Application:
    app = Application(
        broker_address=config.bootstrap,
        consumer_group=f"{config.group}.quix",
        auto_offset_reset="earliest",
        loglevel="WARNING",
        # The harness creates the scenario's topics; Quix creates its windows' changelogs itself.
        auto_create_topics=config.scenario == "windows",
        state_dir=config.state_dir,
    )
    registry = (
        SchemaRegistryClientConfig(url=config.registry)
        if config.options.get("serde", "registry") == "registry"
        else None
    )
    requested = config.schemas["TaskRequested"]
    completed = config.schemas["TaskCompleted"]
    marker = StartMarker()
    delay = config.io_delay

    def registry_topic(name: str, schema: dict[str, Any], **extra: Any) -> Any:
        """A topic whose values Quix reads and writes through the registry."""
        return app.topic(
            name,
            key_serializer="bytes",
            key_deserializer="bytes",
            value_deserializer=AvroDeserializer(schema_registry_client_config=registry),
            value_serializer=AvroSerializer(schema, schema_registry_client_config=registry),
            **extra,
        )

    def topic(name: str) -> Any:
        return app.topic(
            name,
            key_serializer="bytes",
            key_deserializer="bytes",
            value_serializer="bytes",
            value_deserializer="bytes",
        )

    def stage(
        source: str,
        sink: str,
        transform: Callable[[dict[str, Any]], dict[str, Any]],
        out_schema: dict[str, Any],
        *,
        first: bool,
        sleep: bool,
    ) -> None:
        if registry is not None:

            def handle(value: dict[str, Any]) -> dict[str, Any]:
                if first:
                    marker()
                if sleep:
                    time.sleep(delay)  # Quix handlers are synchronous: this is how a model call looks
                return transform(value)

            out = registry_topic(sink, out_schema)
            app.dataframe(registry_topic(source, requested)).apply(handle).to_topic(out)
            return
        decoder = WireCodec(requested, config.schema_ids[source])
        encoder = WireCodec(out_schema, config.schema_ids[sink])

        def work(value: bytes) -> bytes:
            if first:
                marker()
            if sleep:
                time.sleep(delay)
            return encoder.encode(transform(decoder.decode(value)))

        app.dataframe(topic(source)).apply(work).to_topic(topic(sink))

    t = config.topics
    if config.scenario == "windows":
        size = config.window_ms

        def event_time(value: dict[str, Any], _headers: Any, _timestamp: int, _type: Any) -> int:
            marker()
            return epoch_millis(value["observed_at"])

        if registry is not None:
            samples = app.topic(
                t[0],
                key_deserializer="str",
                timestamp_extractor=event_time,
                value_deserializer=AvroDeserializer(schema_registry_client_config=registry),
            )
            summaries = app.topic(
                t[1],
                key_serializer="str",
                value_serializer=AvroSerializer(
                    config.schemas["WindowSummary"], schema_registry_client_config=registry
                ),
            )
        else:
            samples = app.topic(
                t[0],
                key_deserializer="str",
                timestamp_extractor=event_time,
                value_deserializer=_WireDeserializer(
                    WireCodec(config.schemas["MetricSample"], config.schema_ids[t[0]])
                ),
            )
            summaries = app.topic(
                t[1],
                key_serializer="str",
                value_serializer=_WireSerializer(
                    WireCodec(config.schemas["WindowSummary"], config.schema_ids[t[1]])
                ),
            )
        (
            app.dataframe(samples)
            .tumbling_window(size, grace_ms=config.grace_ms)
            .count()
            .final()
            .apply(
                lambda w, key, _ts, _headers: window_summary(key, w["start"], size, w["value"]), metadata=True
            )
            .to_topic(summaries)
        )
    elif config.scenario == "pipeline":
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
