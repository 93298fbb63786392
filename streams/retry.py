"""Retry policy for handlers: exponential backoff with full jitter, capped.

A retry happens inside the message's lane, so later messages of the same key wait for it and key order
holds; other keys keep flowing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streams.errors import ConfigError, StreamsError


@dataclass(frozen=True)
class Retry:
    """Try a failing handler up to ``attempts`` times in all, waiting ``backoff * 2**(n-1)`` (capped at
    ``max_backoff``, randomised by ``jitter``) between tries.

    ``retry_on`` limits which exceptions are retried; a :class:`StreamsError` whose ``retriable`` flag is
    false (a bad value, say) is never retried, since trying again cannot change the outcome.
    """

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 30.0
    jitter: float = 0.5
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("Retry.attempts counts the first try too, so it must be >= 1")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ConfigError("Retry.backoff and Retry.max_backoff must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("Retry.jitter is a fraction of the delay, between 0 and 1")

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether try number ``attempt`` (1-based), which failed with ``error``, gets another try."""
        if attempt >= self.attempts:
            return False
        if isinstance(error, StreamsError) and not error.retriable:
            return False
        return isinstance(error, self.retry_on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt``."""
        base = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base * (1 - self.jitter * random.random())


NO_RETRY = Retry(attempts=1)
