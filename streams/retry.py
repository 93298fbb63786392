"""Retry policy for handlers and workflow steps: errors classed, exponential backoff with jitter, capped.

A handler's retry happens inside the message's lane, so later messages of the same key wait for it and
key order holds; other keys keep flowing. A workflow step's retry (``wf.call(..., retry=Retry(...))``)
is durable instead: the engine journals the failure and asks again after a timer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from streams.errors import RETRIED_KINDS, ConfigError, ErrorKind, error_kind

Classifier = Callable[[BaseException], ErrorKind | None]
"""Classes an error for retries; None leaves it to the default (:func:`streams.errors.error_kind`)."""

RESOURCE_BACKOFF_FACTOR = 4.0
"""A resource error (quota, rate limit) waits this many times longer than a transient one: a saturated
dependency recovers by being left alone, not by quick retries."""


@dataclass(frozen=True)
class Retry:
    """Try up to ``attempts`` times in all, waiting ``backoff * 2**(n-1)`` (capped at ``max_backoff``,
    randomised by ``jitter``) between tries.

    Errors are classed (:class:`~streams.errors.ErrorKind`) by ``classify`` if given, else by their
    type: TRANSIENT and RESOURCE errors are retried (RESOURCE ones with a longer backoff), DATA and
    FATAL ones never, since trying again cannot change the outcome. ``retry_on`` further limits which
    exception types are retried.
    """

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 30.0
    jitter: float = 0.5
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    classify: Classifier | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("Retry.attempts counts the first try too, so it must be >= 1")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ConfigError("Retry.backoff and Retry.max_backoff must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("Retry.jitter is a fraction of the delay, between 0 and 1")

    def kind_of(self, error: BaseException) -> ErrorKind:
        """How this policy classes ``error``."""
        chosen = self.classify(error) if self.classify is not None else None
        return chosen if chosen is not None else error_kind(error)

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether try number ``attempt`` (1-based), which failed with ``error``, gets another try."""
        if attempt >= self.attempts:
            return False
        return self.kind_of(error) in RETRIED_KINDS and isinstance(error, self.retry_on)

    def delay(self, attempt: int, kind: ErrorKind = ErrorKind.TRANSIENT, draw: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt``; ``draw`` in [0, 1) replaces the random
        draw of the jitter (a workflow derives it from the step, so a replay computes the same)."""
        factor = RESOURCE_BACKOFF_FACTOR if kind is ErrorKind.RESOURCE else 1.0
        base = min(self.max_backoff, self.backoff * factor * 2.0 ** (attempt - 1))
        return base * (1 - self.jitter * (random.random() if draw is None else draw))


NO_RETRY = Retry(attempts=1)
