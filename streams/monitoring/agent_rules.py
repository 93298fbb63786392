"""The agent watch's alert rules and the bounds they judge by: agent down (no heartbeat for a while),
lag growing, error rate up, dead letters growing, a circuit breaker open. Ordinary :class:`Rule` s over
the status agent's samples (:mod:`.fleet`), with detectors whose verdicts say what the number means
("lag grew on 3 beats in a row", not "3 is above 2.5").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from streams.errors import ConfigError
from streams.events import AbsenceState, Detection, MetricSample, Severity, ThresholdState
from streams.monitoring import fleet
from streams.monitoring.absence import Absence
from streams.monitoring.detectors import Detector, Threshold, Verdict
from streams.monitoring.rules import Rule
from streams.serde.record import Record

AGENT_DOWN = "agent-down"
LAG_GROWING = "lag-growing"
ERROR_RATE = "error-rate"
DLQ_GROWING = "dlq-growing"
BREAKER_OPEN = "breaker-open"


def _positive(what: str, value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{what} must be a positive number, not {value!r}")


@dataclass(frozen=True)
class Bounds:
    """When the watch calls an agent unwell, in seconds and counts.

    ``down_after``: no heartbeat from any of its workers for this long (give it a few heartbeat
    intervals); ``forget_after``: a silent worker leaves the status; ``lag_rising_beats``: a worker's
    lag grew on this many beats in a row; ``max_error_rate``: failed handler attempts per second
    over the live workers; any dead letter in a worker's last interval is the DLQ growing.
    """

    down_after: float = 30.0
    forget_after: float = 3600.0
    lag_rising_beats: int = 3
    max_error_rate: float = 1.0

    def __post_init__(self) -> None:
        _positive("down_after", self.down_after)
        _positive("forget_after", self.forget_after)
        _positive("max_error_rate", self.max_error_rate)
        if isinstance(self.lag_rising_beats, bool) or not isinstance(self.lag_rising_beats, int):
            raise ConfigError(f"lag_rising_beats must be an integer, not {self.lag_rising_beats!r}")
        _positive("lag_rising_beats", self.lag_rising_beats)
        if self.forget_after < self.down_after:
            raise ConfigError("forget_after must not be shorter than down_after")

    @property
    def down_after_ms(self) -> int:
        return round(self.down_after * 1000)

    @property
    def forget_after_ms(self) -> int:
        return round(self.forget_after * 1000)

    def rules(self) -> list[Rule]:
        """The alert rules over the status agent's samples."""

        def metric(name: str) -> Callable[[MetricSample], bool]:
            return lambda sample: sample.name == name

        lag = Said(
            self.lag_rising_beats - 0.5, "lag grew on {value:.0f} beats in a row", "lag stopped growing"
        )
        errors = Said(
            self.max_error_rate,
            "{value:.3g} failed attempts/s, over {bound:g}/s",
            "{value:.3g} failed attempts/s",
        )
        dead = Said(0.0, "{value:.3g} dead letters/s", "no new dead letters")
        breaker = Said(0.5, "circuit breaker open: calls kept from the capability", "circuit breaker closed")
        return [
            Rule(
                AGENT_DOWN,
                Silence(after=self.down_after, ends=_stopped),
                Severity.CRITICAL,
                where=metric(fleet.BEAT),
            ),
            Rule(LAG_GROWING, lag, Severity.WARNING, where=metric(fleet.LAG_RISING)),
            Rule(ERROR_RATE, errors, Severity.WARNING, where=metric(fleet.ERROR_RATE)),
            Rule(DLQ_GROWING, dead, Severity.WARNING, where=metric(fleet.DEAD_LETTER_RATE)),
            Rule(BREAKER_OPEN, breaker, Severity.WARNING, where=metric(fleet.BREAKER_OPEN)),
        ]


def _stopped(sample: MetricSample) -> bool:
    """An agent whose every worker sent its final beat was stopped on purpose: not down."""
    return sample.labels.get("state") == fleet.STOPPED


@dataclass(frozen=True)
class Said(Detector[ThresholdState]):
    """:class:`Threshold` ``above``, with messages of its own: ``firing`` and ``clear`` are formatted
    with ``value`` and ``bound``. Shares the ``thresholds`` table and state with it."""

    above: float
    firing: str
    clear: str
    _threshold: Threshold = field(init=False, repr=False, compare=False)

    table: ClassVar[str] = Threshold.table
    state: ClassVar[type[Record]] = ThresholdState

    def __post_init__(self) -> None:
        object.__setattr__(self, "_threshold", Threshold(above=self.above))

    def observe(self, state: ThresholdState | None, value: float, at_ms: int) -> Verdict[ThresholdState]:
        verdict = self._threshold.observe(state, value, at_ms)
        said = (self.firing if verdict.firing else self.clear).format(value=value, bound=self.above)
        return Verdict(verdict.state, verdict.firing, said)


@dataclass(frozen=True)
class Silence(Absence):
    """:class:`Absence` of heartbeats, said so."""

    def arrived(
        self, rule: str, state: AbsenceState | None, at_ms: int, labels: Mapping[str, str]
    ) -> tuple[AbsenceState, Detection | None]:
        new_state, present = super().arrived(rule, state, at_ms, labels)
        if present is not None:
            present = present.model_copy(
                update={"message": present.message.replace("records", "heartbeats", 1)}
            )
        return new_state, present

    def ended(
        self, rule: str, state: AbsenceState | None, at_ms: int, labels: Mapping[str, str]
    ) -> Detection | None:
        found = super().ended(rule, state, at_ms, labels)
        if found is None:
            return None
        return found.model_copy(
            update={"message": "stopped on purpose (every worker sent its final heartbeat)"}
        )

    def judge(self, rule: str, state: AbsenceState, now_ms: int) -> Detection | None:
        found = super().judge(rule, state, now_ms)
        if found is None:
            return None
        return found.model_copy(update={"message": found.message.replace("no record", "no heartbeat", 1)})


__all__ = [
    "AGENT_DOWN",
    "BREAKER_OPEN",
    "DLQ_GROWING",
    "ERROR_RATE",
    "LAG_GROWING",
    "Bounds",
    "Said",
    "Silence",
]
