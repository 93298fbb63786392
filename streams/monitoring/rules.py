"""Alert rules: a name, a detector, a severity and a cool-down; and how detections become alerts.

:func:`decide` is the whole alerting policy, a pure function of one series' :class:`AlertState` and
the next :class:`~streams.events.Detection` for it:

- a firing detection opens an alert (an ``OPEN`` :class:`~streams.events.Alert`) unless one is open
  already (de-duplication: at most one open alert per rule and series) or the last one resolved less
  than ``cooldown`` seconds before it (suppressed, and counted in the state);
- a clearing detection resolves the open alert (a ``RESOLVED`` alert with the same ``alert_id``);
- a firing detection of an absence rule judged on an older record than a clear already seen is
  stale (a ticker's report that raced the record that ended the silence) and changes nothing.

Times are the detections' ``at`` (event time for values, the worker's clock for silence).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.errors import ConfigError
from streams.events import Alert as AlertEvent
from streams.events import AlertState, AlertStatus, Detection, Severity
from streams.monitoring.absence import Absence
from streams.monitoring.detectors import Detector
from streams.timestamps import epoch_millis
from streams.windows.spec import Duration

_LEGAL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass(frozen=True)
class Rule:
    """Alert with ``severity`` when ``detector`` fires for a series (a key of the monitored topic).

    ``where(record)`` narrows the records the rule sees (e.g. one metric name of many on a topic);
    ``cooldown`` (seconds or a timedelta) is how long after an alert resolves the rule stays quiet
    for that series.
    """

    name: str
    detector: Detector[Any] | Absence
    severity: Severity = Severity.WARNING
    cooldown: Duration = 0.0
    where: Callable[[Any], bool] | None = None
    cooldown_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _LEGAL_NAME.match(self.name):
            raise ConfigError(f"illegal rule name {self.name!r}: use letters, digits, '_' and '-'")
        if not isinstance(self.detector, Detector | Absence):
            raise ConfigError(
                f"rule {self.name}: detector must be a Detector or Absence, not {self.detector!r}"
            )
        if not isinstance(self.severity, Severity):
            raise ConfigError(f"rule {self.name}: severity must be a Severity, not {self.severity!r}")
        if self.where is not None and not callable(self.where):
            raise ConfigError(f"rule {self.name}: where must be a function of the record")
        seconds = self.cooldown if isinstance(self.cooldown, int | float) else None
        if seconds is None and hasattr(self.cooldown, "total_seconds"):
            seconds = self.cooldown.total_seconds()
        if isinstance(self.cooldown, bool) or seconds is None or seconds < 0:
            raise ConfigError(f"rule {self.name}: cooldown must be seconds >= 0, not {self.cooldown!r}")
        object.__setattr__(self, "cooldown_ms", round(seconds * 1000))


def alert_id(rule: str, key: str, opened_ms: int) -> str:
    """Names an alert by what opened it, so the same detection always opens the same alert."""
    return f"{rule}:{key}:{opened_ms}"


def decide(
    rule: Rule, key: str, state: AlertState | None, detection: Detection
) -> tuple[AlertState, AlertEvent | None]:
    """The series' next alert state for ``detection``, and the alert to send (None: nothing)."""
    current = state or AlertState()
    seen = current.seen_ms
    if detection.last_seen is not None:
        if detection.firing and seen is not None and detection.last_seen < seen:
            return current, None  # stale: judged on a record older than a clear already reported
        seen = detection.last_seen if seen is None else max(seen, detection.last_seen)
    at = epoch_millis(detection.at)
    if detection.firing:
        if current.open:
            return current.model_copy(update={"seen_ms": seen}), None
        if current.resolved_ms is not None and at < current.resolved_ms + rule.cooldown_ms:
            return current.model_copy(update={"seen_ms": seen, "suppressed": current.suppressed + 1}), None
        opened = alert_id(rule.name, key, at)
        alert = AlertEvent(
            alert_id=opened,
            rule=rule.name,
            severity=rule.severity,
            message=f"{key}: {detection.message}",
            value=detection.value,
            labels=dict(detection.labels),
            fired_at=detection.at,
            status=AlertStatus.OPEN,
        )
        new_state = current.model_copy(
            update={
                "open": True,
                "alert_id": opened,
                "message": alert.message,
                "labels": dict(detection.labels),
                "opened_ms": at,
                "seen_ms": seen,
            }
        )
        return new_state, alert
    if not current.open or current.alert_id is None:
        return current.model_copy(update={"seen_ms": seen}), None
    resolved = AlertEvent(
        alert_id=current.alert_id,
        rule=rule.name,
        severity=rule.severity,
        message=f"{key}: resolved: {detection.message}",
        value=detection.value,
        labels=dict(current.labels),
        fired_at=detection.at,
        status=AlertStatus.RESOLVED,
    )
    return current.model_copy(update={"open": False, "resolved_ms": at, "seen_ms": seen}), resolved


__all__ = ["Rule", "alert_id", "decide"]
