"""The records window state is kept as: a partition's stream time, and a sliding window's buffer.

Their Avro schemas are written here rather than generated from .avsc files: they are the runtime's
own, and a buffer's schema is built around the user's event schema.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from pydantic import create_model

from streams.serde.record import Record
from streams.serde.schema import SchemaJSON


class StreamTime(Record):
    """The highest event time (epoch ms) one input partition has seen."""

    __avro_schema__: ClassVar[SchemaJSON] = {
        "type": "record",
        "name": "StreamTime",
        "namespace": "streams.windows",
        "fields": [{"name": "ms", "type": "long"}],
    }

    ms: int


class Buffer(Record):
    """A key's recent records for a sliding window: ``times[i]`` is the event time of ``events[i]``,
    in event-time order. :func:`buffer_of` makes the subclass for one event type."""

    times: list[int]
    events: list[Any]


@cache
def buffer_of(event: type[Record]) -> type[Buffer]:
    """The buffer record of ``event``s (one class per event type, so its schema registers once)."""
    schema: SchemaJSON = {
        "type": "record",
        "name": f"{event.__name__}Buffer",
        "namespace": "streams.windows",
        "fields": [
            {"name": "times", "type": {"type": "array", "items": "long"}},
            {"name": "events", "type": {"type": "array", "items": event.avro_schema()}},
        ],
    }
    model = create_model(
        f"{event.__name__}Buffer",
        __base__=Buffer,
        events=(list[event], ...),  # type: ignore[valid-type]
    )
    model.__avro_schema__ = schema
    return model
