"""Every error the library raises on purpose derives from :class:`StreamsError`.

The tree::

    StreamsError                    root; ``retriable`` says whether trying again may help
    ├── ConfigError                 bad settings or declarations (a user mistake, never retried)
    ├── StackError                  the local Kafka/registry stack could not be started or reached
    ├── TopicError                  topic declaration or admin operation failed
    ├── SchemaError                 a schema could not be parsed, found or registered
    │   └── SchemaIncompatibleError the registry refused a new version under its compatibility rule
    ├── SerializationError          a value could not be encoded (does not match its schema)
    ├── DeserializationError        bytes could not be decoded (not wire format, unknown schema id)
    ├── StateError                  a table's local store could not be opened or written
    ├── TransportError              the Kafka client reported an error; ``retriable`` from librdkafka
    ├── LateRecord                  a record for windows that have closed (counted; dead-lettered if asked)
    ├── CallFailed                  a specialist answered a call with a failure
    ├── CallTimeout                 no answer to a call within its timeout
    └── WorkflowFailed              a workflow ended with an error
        └── WorkflowCancelled       ... because someone cancelled it (``reason`` says why)

Behaviour lives in class data (``retriable``) so callers branch on a flag, not on a list of classes.
The CLI prints ``str(error)`` of these as one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class StreamsError(Exception):
    """Root of every error this library raises on purpose."""

    retriable: bool = False


class ConfigError(StreamsError):
    """Invalid settings, arguments or declarations."""


class StackError(StreamsError):
    """The local stack (Kafka broker, schema registry) failed to start, stop or answer."""


class TopicError(StreamsError):
    """A topic could not be created, described or does not match its declaration."""


class SchemaError(StreamsError):
    """A schema is invalid, missing from the registry, or the registry failed."""


class SchemaIncompatibleError(SchemaError):
    """The registry refused a schema version because it breaks the subject's compatibility rule."""


class SerializationError(StreamsError):
    """A value does not match the schema it is being encoded with."""


class DeserializationError(StreamsError):
    """Bytes read from Kafka are not a decodable message (poison pill)."""


class StateError(StreamsError):
    """A table's local store failed: its directory is locked by another process, unreadable or full."""


class TransportError(StreamsError):
    """The Kafka client failed; ``retriable`` mirrors librdkafka's verdict."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class LateRecord(StreamsError):
    """A record whose windows had all closed when it arrived (event time older than stream time minus
    grace). Never retried; the worker counts it and dead-letters it when ``dead_letter`` is set."""

    def __init__(self, message: str, *, dead_letter: bool) -> None:
        super().__init__(message)
        self.dead_letter = dead_letter


class CallFailed(StreamsError):
    """A specialist failed a call for good (after its retries); ``error_class`` names the remote error."""

    def __init__(self, message: str, *, capability: str, error_class: str | None) -> None:
        super().__init__(message)
        self.capability = capability
        self.error_class = error_class


class CallTimeout(StreamsError):
    """No specialist answered a call within its timeout. The request may still be handled later."""

    retriable = True


class WorkflowFailed(StreamsError):
    """A workflow's code raised (or changed under it): it ended FAILED with ``str(self)`` as the reason."""

    def __init__(self, message: str, *, error_class: str | None) -> None:
        super().__init__(message)
        self.error_class = error_class


class WorkflowCancelled(WorkflowFailed):
    """A workflow was cancelled (``Client.cancel``, ``streams workflow cancel``) before it ended.

    A subclass of :class:`WorkflowFailed`: code that only asks "did it produce a result?" needs no new
    branch, and code that cares tells a cancellation from a failure by class."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, error_class=f"{__name__}.WorkflowCancelled")
        self.reason = reason
