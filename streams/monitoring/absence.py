"""Absence of data: a series that has sent nothing for ``after`` seconds ("no heartbeat for 30 s").

No record can reveal its own absence, so two parts work together on the table ``absence`` (one
:class:`~streams.events.AbsenceState` per rule and series):

- the detector agent's handler notes each record's arrival (its Kafka timestamp) and, when a judge
  may have reported the series silent since its last report, reports it present again (a clearing
  :class:`~streams.events.Detection`), at most once per ``after`` seconds of its records;
- the agent's ticker (:class:`AbsenceTicker`), every fraction of a second on the worker's clock,
  reports each series whose last record is older than ``after`` (a firing detection carrying that
  record's time as ``last_seen``), again every ``after`` seconds while it stays silent.

A ticker cannot write tables and sends outside the handler's transactions, so its reports must be
safe to repeat and to race with the handler: the alert rule ignores a firing whose ``last_seen`` is
older than a clear it has already seen, and keeps one alert open however many firings come.

Silence is judged against how far the worker has read a partition, not only the clock: in a
partition whose every record is handled (caught up), a series is silent if its last record is older
than ``after`` now; in one with records still to handle (a backlog after a restart or rebalance,
or load), only if it is ``after`` older than the partition's latest record handled (its stream
time). So old records being caught up on never make a live series look silent, and a series that
went quiet while no worker ran is still found, by the backlog's own times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.context import Tick
from streams.errors import ConfigError
from streams.events import AbsenceState, Detection
from streams.tables import Table
from streams.timestamps import iso
from streams.topics import Topic
from streams.windows.spec import Duration

TABLE = Table(name="absence", value=AbsenceState, key=str)
_WATCH = "streams.monitoring.absence"


def _millis(moment: int) -> datetime:
    return datetime.fromtimestamp(moment / 1000, UTC)


@dataclass(frozen=True)
class Absence:
    """Fires when a series has sent no record for ``after`` seconds (a number or a timedelta), judged
    on the worker's clock against the records' Kafka timestamps; clears with its next record.

    ``ends(record)``, if given, says that a record is the series' last on purpose (a worker's final
    heartbeat on a deliberate stop): the series is no longer watched, and an alert open for it
    resolves, until its next record starts it again."""

    after: Duration
    ends: Callable[[Any], bool] | None = None
    after_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seconds = self.after if isinstance(self.after, int | float) else None
        if seconds is None and hasattr(self.after, "total_seconds"):
            seconds = self.after.total_seconds()
        if isinstance(self.after, bool) or seconds is None or seconds <= 0:
            raise ConfigError(f"Absence after must be a positive number of seconds, not {self.after!r}")
        if self.ends is not None and not callable(self.ends):
            raise ConfigError("Absence ends must be a function of the record")
        object.__setattr__(self, "after_ms", round(seconds * 1000))

    def arrived(
        self, rule: str, state: AbsenceState | None, at_ms: int, labels: Mapping[str, str]
    ) -> tuple[AbsenceState, Detection | None]:
        """A record of the series arrived at ``at_ms``: its new state, and the clearing detection to
        send if a judge may have called it silent since its presence was last reported."""
        if state is None:
            return AbsenceState(last_seen_ms=at_ms, reported_ms=at_ms, labels=dict(labels)), None
        last_seen = max(state.last_seen_ms, at_ms)
        if at_ms - state.reported_ms < self.after_ms:
            return AbsenceState(
                last_seen_ms=last_seen, reported_ms=state.reported_ms, labels=dict(labels)
            ), None
        silent_for = max(0, at_ms - state.last_seen_ms) / 1000
        present = Detection(
            rule=rule,
            firing=False,
            value=silent_for,
            message=f"records again (the previous one came {silent_for:.1f} s before)",
            labels=dict(labels),
            at=_millis(at_ms),
            last_seen=last_seen,
        )
        return AbsenceState(last_seen_ms=last_seen, reported_ms=at_ms, labels=dict(labels)), present

    def ended(
        self, rule: str, state: AbsenceState | None, at_ms: int, labels: Mapping[str, str]
    ) -> Detection | None:
        """The series ended on purpose at ``at_ms`` (its state is to be deleted): the clearing
        detection to send if it was watched. It cites ``at_ms`` as seen, so a ticker's firing
        judged on the state before it is stale."""
        if state is None:
            return None
        return Detection(
            rule=rule,
            firing=False,
            value=0.0,
            message="stopped on purpose: no longer watched",
            labels=dict(labels),
            at=_millis(at_ms),
            last_seen=max(state.last_seen_ms, at_ms),
        )

    def judge(self, rule: str, state: AbsenceState, now_ms: int) -> Detection | None:
        """A firing detection if the series has been silent for more than ``after`` at ``now_ms``
        (the clock, or the stream time of a partition not caught up)."""
        silent_ms = now_ms - state.last_seen_ms
        if silent_ms <= self.after_ms:
            return None
        return Detection(
            rule=rule,
            firing=True,
            value=silent_ms / 1000,
            message=f"no record for {silent_ms / 1000:.1f} s (the last came at {iso(state.last_seen_ms)})",
            labels=dict(state.labels),
            at=_millis(now_ms),
            last_seen=state.last_seen_ms,
        )


def table_key(rule: str, key: str) -> str:
    """Rule names cannot hold ':', so the first one splits a table key again."""
    return f"{rule}:{key}"


def split_key(stored: str | bytes) -> tuple[str, str]:
    text = stored.decode() if isinstance(stored, bytes) else stored
    rule, _, key = text.partition(":")
    return rule, key


@dataclass
class _Watch:
    """What the ticker last reported of one owned partition."""

    reported: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (last_seen, sent at)


class AbsenceTicker:
    """The detector agent's ticker: reports silent series (see the module docstring)."""

    def __init__(self, rules: Mapping[str, Absence], detections: Topic[Detection]) -> None:
        self._rules = dict(rules)
        self._detections = detections
        shortest = min(rule.after_ms for rule in self._rules.values()) / 1000
        self.interval = min(1.0, max(0.05, shortest / 5))

    async def tick(self, tick: Tick) -> None:
        now_ms = tick.now_ms
        for partition in tick.partitions:
            view = tick.open_table(TABLE, partition)
            cache = view.cache()
            watch = cache.get(_WATCH)
            if not isinstance(watch, _Watch):
                watch = cache[_WATCH] = _Watch()
            states = list(view.scan())
            if not states:
                continue
            # How far this partition is known: now, or the time of the latest record handled.
            caught_up = partition in tick.caught_up
            known_to = now_ms if caught_up else max(state.last_seen_ms for _, state in states)
            for stored, state in states:
                rule_name, key = split_key(stored)
                rule = self._rules.get(rule_name)
                if rule is None:
                    continue  # a rule no longer declared
                name = table_key(rule_name, key)
                found = rule.judge(rule_name, state, known_to)
                if found is None:
                    watch.reported.pop(name, None)
                    continue
                last = watch.reported.get(name)
                if last is not None and last[0] == state.last_seen_ms and now_ms - last[1] < rule.after_ms:
                    continue  # reported already; again only after another ``after``
                await tick.send(self._detections, found, key)
                watch.reported[name] = (state.last_seen_ms, now_ms)


__all__ = ["Absence", "AbsenceTicker"]
