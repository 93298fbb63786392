"""Detectors: pure functions from a series' state and its next value to a verdict and the new state.

Each detector keeps one Avro record per series (rule and key) in a table of the monitor's detector
agent: the table named after the detector's ``table``, holding its ``state`` records. Nothing here
touches Kafka or a clock; the monitor calls :meth:`Detector.observe` once per value, in the order the
series' records arrive, and reports a series that starts or keeps firing, and one that stops.

``at_ms`` is the value's event time in epoch milliseconds (the monitor's ``timestamp``). Silence,
which no value can reveal, is :class:`~streams.monitoring.Absence`'s job.
"""

from __future__ import annotations

import math
import statistics
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from streams.errors import ConfigError
from streams.events import EwmaState, MadState, RateState, ThresholdState
from streams.serde.record import Record

S = TypeVar("S", bound=Record)

MAD_SCALE = 1.4826
"""Makes the median absolute deviation estimate the standard deviation of normally distributed data."""


@dataclass(frozen=True)
class Verdict(Generic[S]):
    """The series' new ``state``, whether it fires now, and what to tell a person about it."""

    state: S
    firing: bool
    message: str


class Detector(ABC, Generic[S]):
    """A detector of anomalies in single values. ``table`` names the table its ``state`` records
    live in; every state record has a ``firing`` field, the last verdict."""

    table: ClassVar[str]
    state: ClassVar[type[Record]]

    @abstractmethod
    def observe(self, state: S | None, value: float, at_ms: int) -> Verdict[S]:
        """The verdict on ``value``, given the series' ``state`` before it (None for a new series)."""


def _number(what: str, value: float | None, *, positive: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, not {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{what} must be positive, not {value!r}")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class Threshold(Detector[ThresholdState]):
    """Fires while the value is above ``above`` or below ``below`` (either or both)."""

    above: float | None = None
    below: float | None = None

    table: ClassVar[str] = "thresholds"
    state: ClassVar[type[Record]] = ThresholdState

    def __post_init__(self) -> None:
        _number("Threshold above", self.above, optional=True)
        _number("Threshold below", self.below, optional=True)
        if self.above is None and self.below is None:
            raise ConfigError("Threshold needs above=, below= or both")
        if self.above is not None and self.below is not None and self.below > self.above:
            raise ConfigError("Threshold below must not exceed above (nothing would be in bounds)")

    def observe(self, state: ThresholdState | None, value: float, at_ms: int) -> Verdict[ThresholdState]:
        if self.above is not None and value > self.above:
            return Verdict(ThresholdState(firing=True), True, f"{_fmt(value)} is above {_fmt(self.above)}")
        if self.below is not None and value < self.below:
            return Verdict(ThresholdState(firing=True), True, f"{_fmt(value)} is below {_fmt(self.below)}")
        return Verdict(ThresholdState(firing=False), False, f"{_fmt(value)} is within bounds")


@dataclass(frozen=True)
class ZScore(Detector[EwmaState]):
    """Fires when a value lies more than ``threshold`` standard deviations from the series' recent mean.

    Mean and variance are exponentially weighted (``alpha``: the weight of each new value): plain
    averages over the first ``warmup`` values, which are never judged, then EWMA. Each update is
    clipped at ``threshold`` deviations, so one spike neither drags the baseline nor widens it enough
    to hide the next; a lasting level shift is still learnt within a few values. A deviation of less
    than ``min_std`` counts as ``min_std`` (a flat series then tolerates small wobbles).
    """

    threshold: float = 3.0
    alpha: float = 0.1
    warmup: int = 10
    min_std: float = 0.0

    table: ClassVar[str] = "ewma"
    state: ClassVar[type[Record]] = EwmaState

    def __post_init__(self) -> None:
        _number("ZScore threshold", self.threshold, positive=True)
        _number("ZScore alpha", self.alpha, positive=True)
        _number("ZScore min_std", self.min_std)
        if self.alpha >= 1:
            raise ConfigError(f"ZScore alpha must be below 1, not {self.alpha!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 2:
            raise ConfigError(f"ZScore warmup must be an integer >= 2, not {self.warmup!r}")

    def score(self, state: EwmaState, value: float) -> float:
        std = max(math.sqrt(state.variance), self.min_std)
        deviation = value - state.mean
        if std == 0.0:
            return 0.0 if deviation == 0.0 else math.copysign(math.inf, deviation)
        return deviation / std

    def observe(self, state: EwmaState | None, value: float, at_ms: int) -> Verdict[EwmaState]:
        if state is None or state.count == 0:
            return Verdict(EwmaState(count=1, mean=value, variance=0.0), False, "learning")
        if state.count < self.warmup:
            count = state.count + 1
            delta = value - state.mean
            mean = state.mean + delta / count
            # Welford: the population variance of the first ``count`` values.
            variance = (state.variance * state.count + delta * (value - mean)) / count
            return Verdict(EwmaState(count=count, mean=mean, variance=variance), False, "learning")
        z = self.score(state, value)
        firing = abs(z) > self.threshold
        std = max(math.sqrt(state.variance), self.min_std)
        diff = value - state.mean
        if firing and math.isfinite(z):
            diff = math.copysign(self.threshold * std, diff)  # (a flat series has no scale to clip at)
        increment = self.alpha * diff
        new = EwmaState(
            firing=firing,
            count=state.count + 1,
            mean=state.mean + increment,
            variance=(1 - self.alpha) * (state.variance + diff * increment),
        )
        side = "above" if z > 0 else "below"
        message = (
            f"{_fmt(value)} is {_fmt(abs(z))} standard deviations {side} the mean {_fmt(state.mean)}"
            if firing
            else f"{_fmt(value)} is within {_fmt(self.threshold)} standard deviations of the mean "
            f"{_fmt(state.mean)}"
        )
        return Verdict(new, firing, message)


@dataclass(frozen=True)
class MAD(Detector[MadState]):
    """Median absolute deviation: fires when a value lies more than ``threshold`` scaled MADs from the
    median of the series' last ``size`` values (kept in its state). Robust: outliers in the window
    barely move median or MAD. Judged once ``warmup`` values are kept; a MAD below ``min_deviation``
    counts as ``min_deviation``."""

    threshold: float = 3.5
    size: int = 50
    warmup: int = 10
    min_deviation: float = 0.0

    table: ClassVar[str] = "mad"
    state: ClassVar[type[Record]] = MadState

    def __post_init__(self) -> None:
        _number("MAD threshold", self.threshold, positive=True)
        _number("MAD min_deviation", self.min_deviation)
        for what, number in (("size", self.size), ("warmup", self.warmup)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 3:
                raise ConfigError(f"MAD {what} must be an integer >= 3, not {number!r}")
        if self.warmup > self.size:
            raise ConfigError("MAD warmup must not exceed size (the window would never fill)")

    def observe(self, state: MadState | None, value: float, at_ms: int) -> Verdict[MadState]:
        recent = list(state.recent) if state is not None else []
        firing = False
        message = "learning"
        if len(recent) >= self.warmup:
            median = statistics.median(recent)
            spread = max(MAD_SCALE * statistics.median(abs(r - median) for r in recent), self.min_deviation)
            deviation = abs(value - median)
            score = (0.0 if deviation == 0 else math.inf) if spread == 0 else deviation / spread
            firing = score > self.threshold
            message = (
                f"{_fmt(value)} is {_fmt(score)} MADs from the median {_fmt(median)}"
                if firing
                else f"{_fmt(value)} is within {_fmt(self.threshold)} MADs of the median {_fmt(median)}"
            )
        recent.append(value)
        del recent[: -self.size]
        return Verdict(MadState(firing=firing, recent=recent), firing, message)


@dataclass(frozen=True)
class RateOfChange(Detector[RateState]):
    """Fires while the series changes faster than ``max_per_second`` (up or down) between consecutive
    values, by event time. A value no later than the previous one is not judged (its verdict stays)."""

    max_per_second: float

    table: ClassVar[str] = "rates"
    state: ClassVar[type[Record]] = RateState

    def __post_init__(self) -> None:
        _number("RateOfChange max_per_second", self.max_per_second, positive=True)

    def observe(self, state: RateState | None, value: float, at_ms: int) -> Verdict[RateState]:
        if state is None or state.last_value is None or state.last_ms is None:
            return Verdict(RateState(last_value=value, last_ms=at_ms), False, "learning")
        seconds = (at_ms - state.last_ms) / 1000
        if seconds <= 0:
            kept = RateState(firing=state.firing, last_value=value, last_ms=state.last_ms)
            return Verdict(kept, state.firing, "no time passed since the previous value")
        per_second = (value - state.last_value) / seconds
        firing = abs(per_second) > self.max_per_second
        message = (
            f"changed by {_fmt(per_second)}/s ({_fmt(state.last_value)} to {_fmt(value)} in "
            f"{_fmt(seconds)} s), over {_fmt(self.max_per_second)}/s"
            if firing
            else f"changes by {_fmt(per_second)}/s, within {_fmt(self.max_per_second)}/s"
        )
        return Verdict(RateState(firing=firing, last_value=value, last_ms=at_ms), firing, message)


__all__ = ["MAD", "Detector", "RateOfChange", "Threshold", "Verdict", "ZScore"]
