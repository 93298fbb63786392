"""Typed multi-agent pipelines on Apache Kafka.

Layers, each in its own subpackage, data flowing one way: ``transport`` (the Kafka client) ->
``serde`` (Avro + schema registry) -> ``runtime`` bookkeeping (ordering, offsets, backpressure) ->
agent handler, run by a ``worker`` -> ``serde`` -> ``transport``. This module only
re-exports the public surface; importing it starts nothing. The in-memory twin for users' tests is
:mod:`streams.testing` (``TestApp``).
"""

from streams.app import App
from streams.client import Client
from streams.config import Settings
from streams.context import Context
from streams.errors import (
    CallFailed,
    CallTimeout,
    CircuitOpen,
    CompensationFailed,
    ConfigError,
    DataError,
    DeadlinePassed,
    DeserializationError,
    ErrorKind,
    FatalError,
    HandoffRefused,
    LateRecord,
    ResourceError,
    SchemaError,
    SchemaIncompatibleError,
    SerializationError,
    StackError,
    StateError,
    StreamsError,
    TopicError,
    TransientError,
    TransportError,
    WorkflowCancelled,
    WorkflowFailed,
)
from streams.handoffs import Handoff
from streams.middleware import Middleware
from streams.options import AtLeastOnce, ExactlyOnce, Limits
from streams.priorities import Priorities, Priority
from streams.publish import Publisher
from streams.retry import Retry
from streams.runner import run_agents
from streams.serde.record import Record
from streams.tables import Table
from streams.topics import Topic
from streams.windows import Hopping, Session, Sliding, Tumbling, Window
from streams.workflows import Breaker, Workflow

__all__ = [
    "App",
    "AtLeastOnce",
    "Breaker",
    "CallFailed",
    "CallTimeout",
    "CircuitOpen",
    "Client",
    "CompensationFailed",
    "ConfigError",
    "Context",
    "DataError",
    "DeadlinePassed",
    "DeserializationError",
    "ErrorKind",
    "ExactlyOnce",
    "FatalError",
    "Handoff",
    "HandoffRefused",
    "Hopping",
    "LateRecord",
    "Limits",
    "Middleware",
    "Priorities",
    "Priority",
    "Publisher",
    "Record",
    "ResourceError",
    "Retry",
    "SchemaError",
    "SchemaIncompatibleError",
    "SerializationError",
    "Session",
    "Settings",
    "Sliding",
    "StackError",
    "StateError",
    "StreamsError",
    "Table",
    "Topic",
    "TopicError",
    "TransientError",
    "TransportError",
    "Tumbling",
    "Window",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowFailed",
    "run_agents",
]
