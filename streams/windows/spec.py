"""Window shapes over event time, and which windows a record at time ``t`` (epoch milliseconds) falls in.

Pure arithmetic: no state, no Kafka. Durations are seconds (``float``) or :class:`~datetime.timedelta`;
inside, everything is whole milliseconds, like Kafka's timestamps, so window bounds never drift.

Every window closes at a moment of *stream time* (the highest event time its partition has seen):
``close_at`` below. From then on its result is final and a record that would have fallen in it is late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from streams.errors import ConfigError

Duration = float | int | timedelta


def _millis(what: str, value: Duration, *, positive: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigError(f"{what} must be seconds (a number) or a timedelta, not {value!r}")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    millis = round(seconds * 1000)
    if millis < 0 or (positive and millis == 0):
        raise ConfigError(f"{what} must be {'positive' if positive else 'zero or more'}, not {value!r}")
    return millis


class Window(NamedTuple):
    """One window: ``start`` and ``end`` in epoch milliseconds. Tumbling and hopping windows hold
    ``start <= t < end``; sliding and session windows hold ``start <= t <= end`` (``end`` is the time of
    a record)."""

    start: int
    end: int

    @property
    def start_at(self) -> datetime:
        return datetime.fromtimestamp(self.start / 1000, UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.fromtimestamp(self.end / 1000, UTC)


@dataclass(frozen=True)
class Tumbling:
    """Back-to-back windows of ``size``: each record falls in exactly one."""

    size: Duration
    grace: Duration = 0.0
    size_ms: int = field(init=False, repr=False, compare=False)
    grace_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_ms", _millis("Tumbling size", self.size, positive=True))
        object.__setattr__(self, "grace_ms", _millis("Tumbling grace", self.grace, positive=False))

    def windows(self, t: int) -> list[Window]:
        start = t - t % self.size_ms
        return [Window(start, start + self.size_ms)]

    def close_at(self, window: Window) -> int:
        return window.end + self.grace_ms


@dataclass(frozen=True)
class Hopping:
    """Windows of ``size`` starting every ``every``: a record falls in ``size / every`` of them."""

    size: Duration
    every: Duration
    grace: Duration = 0.0
    size_ms: int = field(init=False, repr=False, compare=False)
    every_ms: int = field(init=False, repr=False, compare=False)
    grace_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_ms", _millis("Hopping size", self.size, positive=True))
        object.__setattr__(self, "every_ms", _millis("Hopping every", self.every, positive=True))
        object.__setattr__(self, "grace_ms", _millis("Hopping grace", self.grace, positive=False))
        if self.every_ms > self.size_ms:
            raise ConfigError("Hopping every must not exceed size (records would fall in no window)")

    def windows(self, t: int) -> list[Window]:
        size, every = self.size_ms, self.every_ms
        start = t - t % every
        found = []
        while start > t - size:
            found.append(Window(start, start + size))
            start -= every
        found.reverse()
        return found

    def close_at(self, window: Window) -> int:
        return window.end + self.grace_ms


@dataclass(frozen=True)
class Sliding:
    """For every record at ``t``, the window ``[t - size, t]`` of its key's records: a moving
    aggregate that follows the data rather than the clock."""

    size: Duration
    grace: Duration = 0.0
    size_ms: int = field(init=False, repr=False, compare=False)
    grace_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_ms", _millis("Sliding size", self.size, positive=True))
        object.__setattr__(self, "grace_ms", _millis("Sliding grace", self.grace, positive=False))

    def window(self, t: int) -> Window:
        return Window(t - self.size_ms, t)

    def close_at(self, window: Window) -> int:
        return window.end + 1 + self.grace_ms

    def keep_until(self, t: int) -> int:
        """Stream time from which a record at ``t`` is in no open window (the last one holding it,
        ``[t, t + size]``, has closed)."""
        return t + self.size_ms + 1 + self.grace_ms


@dataclass(frozen=True)
class Session:
    """Activity sessions per key: records less than ``gap`` apart share a session, which ends after
    ``gap`` without records. Needs a ``merge`` of two aggregates, for a record that joins two sessions."""

    gap: Duration
    grace: Duration = 0.0
    gap_ms: int = field(init=False, repr=False, compare=False)
    grace_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gap_ms", _millis("Session gap", self.gap, positive=True))
        object.__setattr__(self, "grace_ms", _millis("Session grace", self.grace, positive=False))

    def joins(self, window: Window, t: int) -> bool:
        return window.start - self.gap_ms <= t <= window.end + self.gap_ms

    def close_at(self, window: Window) -> int:
        return window.end + self.gap_ms + 1 + self.grace_ms


WindowSpec = Tumbling | Hopping | Sliding | Session
