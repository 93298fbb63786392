"""A monitor: the two agents that turn a topic of measurements into alerts.

``Monitor(app, source, alerts=..., rules=[...])`` declares, on ``app``:

- the detector agent ``<name>`` on ``source``: for each record and each rule that takes it, runs the
  rule's detector on the series (the record's key) with its state in the agent's tables, and sends a
  :class:`~streams.events.Detection` to ``<app>.<name>.detections`` (same key) while the rule fires
  and once when it stops; absence rules add a ticker (:mod:`streams.monitoring.absence`);
- the alert agent ``<name>-alerts`` on the detections, which keeps one
  :class:`~streams.events.AlertState` per rule and series in its table ``alerts`` and sends ``OPEN``
  and ``RESOLVED`` :class:`~streams.events.Alert` events to ``alerts`` (:func:`~.rules.decide`).

Two stages, because silence is reported by a ticker, which can neither write tables nor join the
handler's transaction: its reports go through the detections topic to the one agent that owns the
alert state. With ``ExactlyOnce()`` (the default) each stage's state, outputs and input offsets
commit together, so a crash repeats no alert.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Generic, TypeVar

from streams.app import App
from streams.context import Context
from streams.errors import ConfigError
from streams.events import Alert, AlertState, Detection, MetricSample
from streams.monitoring.absence import TABLE as ABSENCE_TABLE
from streams.monitoring.absence import Absence, AbsenceTicker, table_key
from streams.monitoring.detectors import Detector
from streams.monitoring.rules import Rule, decide
from streams.options import ExactlyOnce, Guarantee, Limits
from streams.serde.record import Record
from streams.tables import Table
from streams.timestamps import epoch_millis
from streams.topics import Topic

V = TypeVar("V", bound=Record)

ValueOf = Callable[[Any], float | None]
TimeOf = Callable[[Any], datetime | int]
LabelsOf = Callable[[Any], Mapping[str, str]]

ALERTS_TABLE = Table(name="alerts", value=AlertState, key=str)


def _sample_labels(sample: MetricSample) -> Mapping[str, str]:
    return {**sample.labels, "metric": sample.name}


def _no_labels(record: Any) -> Mapping[str, str]:
    return {}


def _millis(moment: datetime | int) -> int:
    if isinstance(moment, datetime):
        return epoch_millis(moment)
    if isinstance(moment, int) and not isinstance(moment, bool):
        return moment
    raise TypeError(f"an event time must be a datetime or epoch milliseconds (int), not {moment!r}")


class Monitor(Generic[V]):
    """Detectors and alert rules over ``source`` (see the module docstring).

    ``value(record)`` is the number the detectors judge (None: the record only counts as a sign of
    life), ``timestamp(record)`` its event time (a datetime or epoch ms; default: the Kafka record's
    timestamp) and ``labels(record)`` the labels its alerts carry. For ``MetricSample`` sources they
    default to the sample's ``value``, ``observed_at`` and ``labels`` plus ``metric`` (its name).
    ``guarantee``, ``concurrency`` and ``limits`` apply to both agents.
    """

    def __init__(
        self,
        app: App,
        source: Topic[V],
        *,
        alerts: Topic[Alert],
        rules: Sequence[Rule],
        name: str = "monitor",
        value: ValueOf | None = None,
        timestamp: TimeOf | None = None,
        labels: LabelsOf | None = None,
        guarantee: Guarantee = ExactlyOnce(),
        concurrency: int = 1,
        limits: Limits = Limits(),
    ) -> None:
        where = f"monitor {name}"
        if source.key is not str or alerts.key is not str:
            raise ConfigError(f"{where}: {source.name} and {alerts.name} must have str keys (the series)")
        for topic in (source, alerts):
            if app.topics.get(topic.name) != topic:
                raise ConfigError(f"{where}: topic {topic.name} is not declared by app {app.name}")
        if not rules:
            raise ConfigError(f"{where}: give it at least one rule")
        names = [rule.name for rule in rules]
        if len(names) != len(set(names)):
            raise ConfigError(f"{where}: two rules named alike in {names}")
        samples = issubclass(source.value, MetricSample)
        if value is None and not samples:
            raise ConfigError(f"{where}: say which number of a {source.value.__name__} to judge (value=...)")
        self.name = name
        self.rules = {rule.name: rule for rule in rules}
        self.source = source
        self.alerts = alerts
        self.detections = app.topic(
            f"{app.name}.{name}.detections",
            value=Detection,
            partitions=source.partitions,
            replication=source.replication,
        )
        self.tables = _detector_tables(rules)
        detect = DetectStage(
            rules,
            self.tables,
            self.detections,
            value=value or attrgetter("value"),
            timestamp=timestamp or (attrgetter("observed_at") if samples else None),
            labels=labels or (_sample_labels if samples else _no_labels),
        )
        app.agent(
            source,
            name=name,
            concurrency=concurrency,
            ordering="key",
            guarantee=guarantee,
            limits=limits,
            tables=list(self.tables.values()),
        )(detect)
        absences = {r.name: r.detector for r in rules if isinstance(r.detector, Absence)}
        if absences:
            agent = app.agents[name]
            app.agents[name] = dataclasses.replace(agent, ticker=AbsenceTicker(absences, self.detections))
        self.alert_agent = f"{name}-alerts"
        app.agent(
            self.detections,
            name=self.alert_agent,
            concurrency=concurrency,
            ordering="key",
            guarantee=guarantee,
            limits=limits,
            tables=[ALERTS_TABLE],
        )(AlertStage(self.rules, alerts))


def _detector_tables(rules: Sequence[Rule]) -> dict[str, Table[Any]]:
    tables: dict[str, Table[Any]] = {}
    for rule in rules:
        detector = rule.detector
        if isinstance(detector, Absence):
            tables[ABSENCE_TABLE.name] = ABSENCE_TABLE
        else:
            tables[detector.table] = Table(name=detector.table, value=detector.state, key=str)
    return tables


class DetectStage:
    """The detector agent's handler."""

    def __init__(
        self,
        rules: Sequence[Rule],
        tables: Mapping[str, Table[Any]],
        detections: Topic[Detection],
        *,
        value: ValueOf,
        timestamp: TimeOf | None,
        labels: LabelsOf,
    ) -> None:
        self._rules = list(rules)
        self._tables = dict(tables)
        self._detections = detections
        self._value = value
        self._timestamp = timestamp
        self._labels = labels

    async def __call__(self, record: Any, ctx: Context) -> None:
        if not isinstance(ctx.key, str):
            raise ValueError("a monitored record needs a key: it names the series")
        key = ctx.key
        value: float | None = None
        measured = False
        at_ms = 0
        labels: Mapping[str, str] = {}
        for rule in self._rules:
            if rule.where is not None and not rule.where(record):
                continue
            if not measured:
                found = self._value(record)
                value = None if found is None else float(found)
                at_ms = ctx.timestamp_ms if self._timestamp is None else _millis(self._timestamp(record))
                labels = self._labels(record)
                measured = True
            stored = table_key(rule.name, key)
            detector = rule.detector
            if isinstance(detector, Absence):
                view = ctx.table(ABSENCE_TABLE)
                if detector.ends is not None and detector.ends(record):
                    cleared = detector.ended(rule.name, view.get(stored), ctx.timestamp_ms, labels)
                    view.delete(stored)
                    if cleared is not None:
                        await ctx.send(self._detections, cleared)
                    continue
                # Arrival, not event time: silence is judged against the worker's clock.
                state, present = detector.arrived(rule.name, view.get(stored), ctx.timestamp_ms, labels)
                view.set(stored, state)
                if present is not None:
                    await ctx.send(self._detections, present)
            elif value is not None:
                await self._observe(ctx, rule, detector, stored, value, at_ms, labels)

    async def _observe(
        self,
        ctx: Context,
        rule: Rule,
        detector: Detector[Any],
        stored: str,
        value: float,
        at_ms: int,
        labels: Mapping[str, str],
    ) -> None:
        view = ctx.table(self._tables[detector.table])
        state = view.get(stored)
        was_firing = bool(state is not None and state.firing)
        verdict = detector.observe(state, value, at_ms)
        view.set(stored, verdict.state)
        if verdict.firing or was_firing:
            # Firing is reported on every record that fires (the alert rule keeps one alert open and
            # can open it when a cool-down ends); clearing once.
            await ctx.send(
                self._detections,
                Detection(
                    rule=rule.name,
                    firing=verdict.firing,
                    value=value,
                    message=verdict.message,
                    labels=dict(labels),
                    at=datetime.fromtimestamp(at_ms / 1000, UTC),
                ),
            )


class AlertStage:
    """The alert agent's handler."""

    def __init__(self, rules: Mapping[str, Rule], alerts: Topic[Alert]) -> None:
        self._rules = rules
        self._alerts = alerts

    async def __call__(self, detection: Detection, ctx: Context) -> None:
        rule = self._rules.get(detection.rule)
        if rule is None:
            raise ValueError(f"a detection for rule {detection.rule!r}, which this monitor does not have")
        if not isinstance(ctx.key, str):
            raise ValueError("a detection needs a key: it names the series")
        view = ctx.table(ALERTS_TABLE)
        stored = table_key(rule.name, ctx.key)
        state = view.get(stored)
        new_state, alert = decide(rule, ctx.key, state, detection)
        if new_state != state:
            view.set(stored, new_state)
        if alert is not None:
            await ctx.send(self._alerts, alert)


__all__ = ["Monitor"]
