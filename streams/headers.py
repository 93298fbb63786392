"""Names and constructors of the headers that carry identity and correlation on every message.

``message-id`` is unique per message; ``correlation-id`` is shared by everything one piece of work
causes; ``causation-id`` is the message id of the message that caused this one (absent at the origin).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence

MESSAGE_ID = "message-id"
CORRELATION_ID = "correlation-id"
CAUSATION_ID = "causation-id"
SENT_BY = "sent-by"  # the agent that sent a message (absent at the origin)
TRACEPARENT = "traceparent"  # W3C trace context
TRACESTATE = "tracestate"

# Request/reply (specialists): where the answer to a request goes, and under which key.
REPLY_TO = "reply-to"
REPLY_KEY = "reply-key"
# The request an answer cites when it is not the one answered: a specialist that hands a request off
# sends a new one, and the caller still waits for an answer to its own (see streams.handoffs).
REPLY_REQUEST = "reply-request"

# Handoffs between specialists: the capabilities a request has been through, first to last,
# comma-separated (capability names hold no comma); the most handoffs its chain may take; why the
# last one was made.
HANDOFF_CHAIN = "handoff-chain"
HANDOFF_LIMIT = "handoff-limit"
HANDOFF_REASON = "handoff-reason"

# When the work a message asks for stops being wanted (epoch milliseconds). Everything a handler sends
# carries it on, so it holds across every hop; a specialist never starts a request past it.
DEADLINE = "deadline"

# Why and where a dead letter failed, added to its original headers (see streams.worker.deadletter).
DLQ_REASON = "dlq-reason"
DLQ_ERROR_CLASS = "dlq-error-class"
DLQ_SOURCE_TOPIC = "dlq-source-topic"
DLQ_SOURCE_PARTITION = "dlq-source-partition"
DLQ_SOURCE_OFFSET = "dlq-source-offset"
DLQ_ATTEMPTS = "dlq-attempts"
DLQ_AGENT = "dlq-agent"
DLQ_FAILED_AT = "dlq-failed-at"
DLQ_REPLAYED_FROM = "dlq-replayed-from"  # set by a replay: where the letter was read from
DLQ_HEADERS = (
    DLQ_REASON,
    DLQ_ERROR_CLASS,
    DLQ_SOURCE_TOPIC,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_OFFSET,
    DLQ_ATTEMPTS,
    DLQ_AGENT,
    DLQ_FAILED_AT,
)

Headers = list[tuple[str, bytes]]


def deadline_header(deadline_ms: int) -> tuple[str, bytes]:
    return (DEADLINE, str(deadline_ms).encode())


def deadline_of(headers: dict[str, str]) -> int | None:
    """The ``deadline`` header in epoch ms; None if absent or unreadable (a foreign client's)."""
    text = headers.get(DEADLINE)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def new_id() -> str:
    return uuid.uuid4().hex


def origin_headers(correlation_id: str | None = None, message_id: str | None = None) -> Headers:
    """Headers of a message that starts a piece of work (published from code or the CLI)."""
    message_id = message_id or new_id()
    return [
        (MESSAGE_ID, message_id.encode()),
        (CORRELATION_ID, (correlation_id or message_id).encode()),
    ]


def get(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str | None:
    """The last value of header ``name`` as text, or None."""
    found: str | None = None
    for key, value in headers or ():
        if key == name and value is not None:
            found = value.decode("utf-8", errors="replace")
    return found


def as_text(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    return {k: (v.decode("utf-8", errors="replace") if v is not None else "") for k, v in headers or ()}


def derived_id(parent: str, agent: str, index: int) -> str:
    """The id of the ``index``-th message ``agent`` sends while handling ``parent``.

    Deterministic, so handling the same message again (a retry, a redelivery after a crash) sends the
    same ids, and an idempotent consumer downstream recognises the repeats.
    """
    # blake2b, not uuid5: the same stability at a tenth of the cost, on every message sent.
    return hashlib.blake2b(f"{parent}/{agent}/{index}".encode(), digest_size=16).hexdigest()


def message_identity(headers: dict[str, str], topic: str, partition: int, offset: int) -> str:
    """A message's stable id: its ``message-id`` header, or for messages from clients that set none,
    its position ``topic/partition@offset`` (the same on every redelivery)."""
    return headers.get(MESSAGE_ID) or f"{topic}/{partition}@{offset}"


def child_headers(message_id: str | None, correlation_id: str | None, child_id: str | None = None) -> Headers:
    """Headers of a message caused by message ``message_id``: same correlation, causation = parent."""
    child_id = child_id or new_id()
    headers: Headers = [
        (MESSAGE_ID, child_id.encode()),
        (CORRELATION_ID, (correlation_id or message_id or child_id).encode()),
    ]
    if message_id:
        headers.append((CAUSATION_ID, message_id.encode()))
    return headers
