"""Caching of idempotent calls: ``wf.call(..., cache=timedelta(...))`` returns an earlier result of the
same capability for the same input, while it is fresh, without a request.

The results live in the engine's table ``call-cache``, keyed by capability and a hash of the input's
wire-format bytes. Like the journal it is partitioned by the engine's input, so each partition of the
workflow's event topic has a cache of its own: a result is served to the workflows of the partition
that computed it (runs of one workflow id always share one). With P partitions a popular input may
be computed up to P times per TTL; the price of keeping the cache in the engine's transaction, so a
result is cached exactly when its step is journaled, with no coordination between workers.

Determinism: whether a step was served from the cache is decided the first time the code asks for
it, and journaled with the step (``cached``); a replay reads the journal, never the cache again.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from streams.events import CachedResult, StepKind, StepStatus, WorkflowJournal
from streams.state.view import TableView
from streams.tables import Table

CACHE = Table(name="call-cache", value=CachedResult)

CacheLookup = Callable[[str], CachedResult | None]


def cache_key(capability: str, payload: bytes) -> str:
    return f"{capability}:{hashlib.blake2b(payload, digest_size=16).hexdigest()}"


class CacheStats:
    """Hits and misses per capability, since the worker started (read by the metrics endpoint)."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()


def store_answers(
    before: WorkflowJournal | None, after: WorkflowJournal, cache: TableView[CachedResult]
) -> None:
    """Cache the results of cacheable steps that succeeded with this event."""
    old = before.steps if before is not None else []
    for index, step in enumerate(after.steps):
        if (
            step.kind is not StepKind.CALL
            or step.cache_key is None
            or step.cache_ttl_ms is None
            or step.cached
            or step.status is not StepStatus.SUCCEEDED
            or step.result is None
            or (index < len(old) and old[index].status is StepStatus.SUCCEEDED)
        ):
            continue
        stored = step.finished_at or after.updated_at
        cache.set(
            step.cache_key,
            CachedResult(
                capability=step.name,
                result=step.result,
                stored_at=stored,
                expires_at=stored + timedelta(milliseconds=step.cache_ttl_ms),
            ),
        )


def fresh(found: CachedResult | None, now: datetime) -> CachedResult | None:
    return found if found is not None and found.expires_at > now else None
