"""Every error the library raises on purpose derives from :class:`StreamsError`.

The tree::

    StreamsError                    root; ``retriable`` says whether trying again may help, ``kind``
    │                               how a retry policy classes it (:class:`ErrorKind`)
    ├── TransientError              raise it for a hiccup: retried with backoff
    ├── ResourceError               ... for a saturated dependency (quota, rate limit): retried, slower
    ├── DataError                   ... for an input that can never succeed: not retried
    ├── FatalError                  ... for anything else that must not be retried
    ├── DeadlinePassed              a request arrived after its deadline: dead-lettered, never started
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
    │   ├── CircuitOpen             ... refused at once: the capability's circuit breaker is open
    │   └── HandoffRefused          ... a specialist's handoff was refused (cycle, hop limit, bad context)
    ├── CallTimeout                 no answer to a call within its timeout
    └── WorkflowFailed              a workflow ended with an error
        ├── WorkflowCancelled       ... because someone cancelled it (``reason`` says why)
        └── CompensationFailed      ... and a compensation of its saga failed too: needs a human

Behaviour lives in class data (``retriable``) so callers branch on a flag, not on a list of classes.
The CLI prints ``str(error)`` of these as one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """How a retry policy classes an error: ``TRANSIENT`` and ``RESOURCE`` are retried (a resource
    error with a longer backoff), ``DATA`` (this input can never succeed) and ``FATAL`` are not."""

    TRANSIENT = "TRANSIENT"
    RESOURCE = "RESOURCE"
    DATA = "DATA"
    FATAL = "FATAL"


RETRIED_KINDS = frozenset({ErrorKind.TRANSIENT, ErrorKind.RESOURCE})


class StreamsError(Exception):
    """Root of every error this library raises on purpose."""

    retriable: bool = False
    kind: ErrorKind | None = None  # None: FATAL unless ``retriable`` (see :func:`error_kind`)


class TransientError(StreamsError):
    """Raise it (or a subclass) when trying again soon may well succeed."""

    retriable = True
    kind = ErrorKind.TRANSIENT


class ResourceError(StreamsError):
    """Raise it when a dependency is saturated (quota, rate limit, pool exhausted): retried, with a
    longer backoff than a transient error, since hammering a saturated resource keeps it so."""

    retriable = True
    kind = ErrorKind.RESOURCE


class DataError(StreamsError):
    """Raise it when this input can never succeed (invalid, unsupported): not retried."""

    kind = ErrorKind.DATA


class FatalError(StreamsError):
    """Raise it when nothing but a fix can help: not retried."""

    kind = ErrorKind.FATAL


class DeadlinePassed(StreamsError):
    """A request arrived after its deadline (the ``deadline`` header): its handler never started it.
    The message goes to the dead-letter topic with this as its reason; whoever asked has timed out."""

    kind = ErrorKind.FATAL


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

    def __init__(
        self,
        message: str,
        *,
        capability: str,
        error_class: str | None,
        error_kind: ErrorKind | str | None = None,
    ) -> None:
        super().__init__(message)
        self.capability = capability
        self.error_class = error_class
        # The remote error's class, as the specialist's policy saw it: it decides a caller's retries.
        self.remote_kind = _as_kind(error_kind)


class CircuitOpen(CallFailed):
    """The capability's circuit breaker is open (it failed too often lately) and no fallback was
    declared: the call failed at once, without a request. Not retried: the breaker says when to try."""

    kind = ErrorKind.FATAL


class HandoffRefused(CallFailed):
    """A specialist handed a request off and the handoff was refused before anything was sent: the
    capability is unknown or already in the request's chain (a cycle), the chain would pass its hop
    limit, or the context does not fit the target's input schema (or the target answers with another
    output record). Raised in the specialist, and in the caller, which gets it as the call's failure.
    Not retried: the same request would be refused the same way."""

    kind = ErrorKind.FATAL


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


class CompensationFailed(WorkflowFailed):
    """A workflow failed (or was cancelled), and then a compensation of its saga failed after its
    retries: it ended ``FAILED_COMPENSATION``, and what was done may be only partly undone."""


_REMOTE_FAILURES: dict[str, type[CallFailed]] = {
    f"{HandoffRefused.__module__}.{HandoffRefused.__qualname__}": HandoffRefused,
}


def call_failed(
    message: str, *, capability: str, error_class: str | None, error_kind: ErrorKind | str | None
) -> CallFailed:
    """The error a caller raises for a specialist's failure: as this library's own subclass of
    :class:`CallFailed` when the remote error was one (``except HandoffRefused`` works across the
    wire), else a plain :class:`CallFailed` naming the remote class."""
    failure = _REMOTE_FAILURES.get(error_class or "", CallFailed)
    return failure(message, capability=capability, error_class=error_class, error_kind=error_kind)


def _as_kind(value: ErrorKind | str | None) -> ErrorKind | None:
    if value is None or isinstance(value, ErrorKind):
        return value
    try:
        return ErrorKind(value)
    except ValueError:
        return None  # a kind this version does not know: no opinion


def error_kind(error: BaseException) -> ErrorKind:
    """How ``error`` is classed when no user classifier decides: a :class:`StreamsError`'s ``kind``
    (or TRANSIENT if ``retriable``, else FATAL; values that do not fit their schema are DATA), a
    failed call's remote kind, ``MemoryError`` as RESOURCE, and anything else TRANSIENT, so an
    unknown error is retried as it always was."""
    if isinstance(error, CallFailed) and type(error).kind is None:
        return error.remote_kind or ErrorKind.TRANSIENT
    if isinstance(error, StreamsError):
        if error.kind is not None:
            return error.kind
        if isinstance(error, SerializationError | DeserializationError):
            return ErrorKind.DATA
        return ErrorKind.TRANSIENT if error.retriable else ErrorKind.FATAL
    if isinstance(error, MemoryError):
        return ErrorKind.RESOURCE
    return ErrorKind.TRANSIENT
