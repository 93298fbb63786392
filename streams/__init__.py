"""Typed multi-agent pipelines on Apache Kafka.

Layers, each in its own subpackage, data flowing one way: ``transport`` (the Kafka client) ->
``serde`` (Avro + schema registry) -> ``runtime`` bookkeeping (ordering, offsets, backpressure) ->
agent handler, run by a ``worker`` -> ``serde`` -> ``transport``. This module only
re-exports the public surface; importing it starts nothing. The in-memory twin for users' tests is
:mod:`streams.testing` (``TestApp``).
"""

from streams.app import App
from streams.config import Settings
from streams.context import Context
from streams.errors import (
    ConfigError,
    DeserializationError,
    SchemaError,
    SchemaIncompatibleError,
    SerializationError,
    StackError,
    StateError,
    StreamsError,
    TopicError,
    TransportError,
)
from streams.middleware import Middleware
from streams.options import AtLeastOnce, ExactlyOnce, Limits
from streams.publish import Publisher
from streams.retry import Retry
from streams.runner import run_agents
from streams.serde.record import Record
from streams.tables import Table
from streams.topics import Topic

__all__ = [
    "App",
    "AtLeastOnce",
    "ConfigError",
    "Context",
    "DeserializationError",
    "ExactlyOnce",
    "Limits",
    "Middleware",
    "Publisher",
    "Record",
    "Retry",
    "SchemaError",
    "SchemaIncompatibleError",
    "SerializationError",
    "Settings",
    "StackError",
    "StateError",
    "StreamsError",
    "Table",
    "Topic",
    "TopicError",
    "TransportError",
    "run_agents",
]
