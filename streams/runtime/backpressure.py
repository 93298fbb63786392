"""Backpressure accounting: how much received work is buffered or processing, and when to pause fetching.

The consumer pauses its partitions when either bound is reached and resumes only once *both* counts
are back at or below their low-water marks. The gap between the two is the hysteresis that stops it
from flapping pause/resume on every message. Pausing (rather than not polling) keeps the consumer
polling, so slow handlers never trip ``max.poll.interval.ms``.

This module owns only the counting and the two thresholds; it never pauses anything itself and never
refuses work: one message larger than ``max_bytes`` is still admitted (it just pauses fetching), since
refusing it would stall its partition forever.
"""

from __future__ import annotations

from streams.errors import ConfigError


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be an integer > 0, got {value!r}")
    return value


class Backpressure:
    """Counts in-flight messages and bytes against a high and a low watermark for each.

    - :attr:`should_pause`: messages >= ``max_messages`` or bytes >= ``max_bytes``;
    - :attr:`should_resume`: messages <= ``low_messages`` and bytes <= ``low_bytes``.

    Low-water marks default to half of each maximum (rounded down) and must be below it. They are
    inclusive ("at or below") so that ``max_messages=1`` resumes once the one message is done.
    Between the marks neither is true: the caller keeps its current paused/running state.
    """

    __slots__ = ("_bytes", "_messages", "low_bytes", "low_messages", "max_bytes", "max_messages")

    def __init__(
        self,
        *,
        max_messages: int,
        max_bytes: int,
        low_messages: int | None = None,
        low_bytes: int | None = None,
    ) -> None:
        self.max_messages = _positive_int("max_messages", max_messages)
        self.max_bytes = _positive_int("max_bytes", max_bytes)
        self.low_messages = self._low("low_messages", low_messages, self.max_messages, "max_messages")
        self.low_bytes = self._low("low_bytes", low_bytes, self.max_bytes, "max_bytes")
        self._messages = 0
        self._bytes = 0

    @staticmethod
    def _low(name: str, value: int | None, high: int, high_name: str) -> int:
        if value is None:
            return high // 2
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if value >= high:
            raise ConfigError(
                f"{name} ({value}) must be below {high_name} ({high}), or pause/resume would flap"
            )
        return value

    @property
    def messages(self) -> int:
        """Messages buffered or processing."""
        return self._messages

    @property
    def nbytes(self) -> int:
        """Bytes of the messages buffered or processing."""
        return self._bytes

    def add(self, nbytes: int) -> None:
        """Count one received message of ``nbytes`` bytes."""
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        self._messages += 1
        self._bytes += nbytes

    def remove(self, nbytes: int) -> None:
        """Uncount one message of ``nbytes`` bytes that is finished (or dropped on revocation).

        Raises ValueError rather than going negative: that would mean an add/remove mismatch, which
        would otherwise silently disable backpressure.
        """
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        if self._messages == 0 or nbytes > self._bytes:
            raise ValueError(
                f"remove({nbytes}) without a matching add: "
                f"{self._messages} messages, {self._bytes} bytes counted"
            )
        self._messages -= 1
        self._bytes -= nbytes

    @property
    def should_pause(self) -> bool:
        """Either bound is reached: stop fetching."""
        return self._messages >= self.max_messages or self._bytes >= self.max_bytes

    @property
    def should_resume(self) -> bool:
        """Both counts are at or below their low-water marks: fetching may start again."""
        return self._messages <= self.low_messages and self._bytes <= self.low_bytes
