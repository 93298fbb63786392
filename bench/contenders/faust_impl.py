"""Peer: faust-streaming (aiokafka underneath). One agent per stage, raw bytes on the topics and the
Avro wire codec done in the agent, so it does the same decode/encode work as everyone else.

Faust's defaults otherwise: at-least-once, one agent instance per topic, so each partition is
handled one message at a time (the I/O scenario awaits 10 ms per message in sequence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust  # type: ignore[import-not-found,unused-ignore]
from faust.worker import Worker  # type: ignore[import-not-found,unused-ignore]

from bench.contenders.common import Config, StartMarker, WireCodec, complete, relay


def build(config: Config) -> faust.App:
    app = faust.App(
        config.group,
        broker=f"kafka://{config.bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,  # no __assignor topic: the broker does not auto-create topics
        consumer_auto_offset_reset="earliest",
    )
    requested = config.schemas["TaskRequested"]
    completed = config.schemas["TaskCompleted"]

    def topic(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=config.partitions,
        )

    marker = StartMarker()
    delay = config.io_delay

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
        out = topic(sink)

        async def agent(stream: AsyncIterator[Any]) -> None:
            async for key, value in stream.items():  # type: ignore[attr-defined]
                if first:
                    marker()
                if sleep:
                    await asyncio.sleep(delay)
                await out.send(key=key, value=encoder.encode(transform(decoder.decode(value))))

        agent.__name__ = f"stage_{source.rsplit('.', 1)[-1]}"
        app.agent(topic(source), name=agent.__name__)(agent)

    t = config.topics
    if config.scenario == "pipeline":
        stage(t[0], t[1], lambda v: relay(v, 1), requested, first=True, sleep=False)
        stage(t[1], t[2], lambda v: relay(v, 2), requested, first=False, sleep=False)
        stage(t[2], t[3], complete, completed, first=False, sleep=False)
    else:
        stage(t[0], t[1], complete, completed, first=True, sleep=True)
    return app


def main() -> None:
    config = Config.load()
    app = build(config)
    logging.basicConfig(level=logging.WARNING)
    # Worker handles SIGTERM by stopping the app; argv must not reach faust's own CLI parser.
    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
