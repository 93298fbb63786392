"""Dead letters: a message that cannot be handled goes, unchanged, to the agent's dead-letter topic with
the reason in headers, so nothing is skipped silently and it can be replayed after a fix."""

from __future__ import annotations

import time
from typing import Any

from streams.headers import Headers

REASON = "dlq-reason"
ERROR_CLASS = "dlq-error-class"
SOURCE_TOPIC = "dlq-source-topic"
SOURCE_PARTITION = "dlq-source-partition"
SOURCE_OFFSET = "dlq-source-offset"
ATTEMPTS = "dlq-attempts"
AGENT = "dlq-agent"
FAILED_AT = "dlq-failed-at"
REPLAYED_FROM = "dlq-replayed-from"

DLQ_HEADERS = (REASON, ERROR_CLASS, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, ATTEMPTS, AGENT, FAILED_AT)
_MAX_REASON = 2000


def dead_letter_headers(message: Any, agent: str, error: BaseException, attempts: int) -> Headers:
    """The original headers (identity, correlation) followed by why and where it failed."""
    original = [(k, v) for k, v in (message.headers() or []) if k not in DLQ_HEADERS and v is not None]
    reason = f"{error}" or type(error).__name__
    return [
        *original,
        (REASON, reason[:_MAX_REASON].encode("utf-8", errors="replace")),
        (ERROR_CLASS, f"{type(error).__module__}.{type(error).__qualname__}".encode()),
        (SOURCE_TOPIC, message.topic().encode()),
        (SOURCE_PARTITION, str(message.partition()).encode()),
        (SOURCE_OFFSET, str(message.offset()).encode()),
        (ATTEMPTS, str(attempts).encode()),
        (AGENT, agent.encode()),
        (FAILED_AT, str(int(time.time() * 1000)).encode()),
    ]
