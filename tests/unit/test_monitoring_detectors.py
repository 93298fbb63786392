"""Detectors and the alerting policy as pure functions: each verdict, each state, each alert decision."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from streams import ConfigError
from streams.events import AbsenceState, AlertState, AlertStatus, Detection, Severity
from streams.monitoring import MAD, Absence, Detector, RateOfChange, Rule, Threshold, ZScore
from streams.monitoring.rules import decide
from tests._records import EPOCH

pytestmark = pytest.mark.unit

S = 1000


def _run(detector: Detector[Any], values: list[float], step_ms: int = S) -> list[bool]:
    """The firing verdicts on ``values``, one per ``step_ms``, state carried as the monitor does."""
    state = None
    firing = []
    for i, value in enumerate(values):
        verdict = detector.observe(state, value, i * step_ms)
        assert verdict.state.firing == verdict.firing
        state = verdict.state
        firing.append(verdict.firing)
    return firing


def _noise(n: int, seed: int = 1, level: float = 20.0, sigma: float = 0.5) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(level, sigma) for _ in range(n)]


# ---------------------------------------------------------------- threshold


def test_threshold_fires_outside_its_bounds_only() -> None:
    detector = Threshold(above=10, below=-10)
    assert _run(detector, [0, 10, 10.5, 3, -10, -11, 0]) == [False, False, True, False, False, True, False]
    verdict = detector.observe(None, 12.5, 0)
    assert verdict.message == "12.5 is above 10"
    with pytest.raises(ConfigError, match="needs above"):
        Threshold()
    with pytest.raises(ConfigError, match="below must not exceed"):
        Threshold(above=1, below=2)


# ---------------------------------------------------------------- z-score


def test_zscore_learns_then_flags_a_spike_and_clears_on_the_next_normal_value() -> None:
    values = _noise(60)
    values[40] = 35.0  # 30 sigma
    firing = _run(ZScore(threshold=4, alpha=0.1, warmup=10), values)
    assert [i for i, f in enumerate(firing) if f] == [40]


def test_zscore_clipping_keeps_a_second_spike_visible() -> None:
    values = _noise(80)
    values[40] = 60.0
    values[43] = 26.0  # 12 sigma, three values after an 80-sigma spike
    firing = _run(ZScore(threshold=4), values)
    assert [i for i, f in enumerate(firing) if f] == [40, 43]


def test_zscore_never_judges_during_warmup_and_adapts_to_a_level_shift() -> None:
    assert not any(_run(ZScore(threshold=1, warmup=5), [1.0, 100.0, -50.0, 3.0, 1e6]))
    values = _noise(30, level=20) + _noise(60, seed=2, level=30)
    firing = _run(ZScore(threshold=4, warmup=5), values)
    shift = 30
    assert firing[shift]  # the shift is seen...
    assert not any(firing[shift + 30 :])  # ...and learnt


def test_zscore_on_a_flat_series_fires_on_any_change_unless_min_std_says_otherwise() -> None:
    flat = [5.0] * 20 + [5.01]
    assert _run(ZScore(warmup=5), flat)[-1]
    assert not _run(ZScore(warmup=5, min_std=0.1), flat)[-1]


# ---------------------------------------------------------------- median absolute deviation


def test_mad_flags_outliers_robustly_and_keeps_a_bounded_window() -> None:
    values = _noise(40)
    values[20] = 24.0
    values[21] = 25.0  # two outliers in a row: the second is not masked by the first
    detector = MAD(threshold=5, size=15, warmup=10)
    firing = _run(detector, values)
    assert [i for i, f in enumerate(firing) if f] == [20, 21]
    state = None
    for i, value in enumerate(values):
        state = detector.observe(state, value, i).state
    assert state is not None and state.recent == values[-15:]


def test_mad_is_checked_against_a_window_that_is_too_small() -> None:
    with pytest.raises(ConfigError, match="warmup must not exceed size"):
        MAD(size=5, warmup=10)


# ---------------------------------------------------------------- rate of change


def test_rate_of_change_is_per_second_of_event_time() -> None:
    detector = RateOfChange(max_per_second=2)
    # +1 per 1 s, then +5 per 1 s, then +5 per 10 s.
    assert _run(detector, [0, 1, 6, 7]) == [False, False, True, False]
    state = detector.observe(None, 0, 0).state
    slow = detector.observe(state, 5, 10 * S)
    assert not slow.firing
    same_time = detector.observe(slow.state, 100, 10 * S)
    assert not same_time.firing and same_time.state.last_ms == 10 * S


# ---------------------------------------------------------------- absence


def test_absence_is_judged_on_arrival_times_and_presence_reported_once_per_period() -> None:
    absence = Absence(after=timedelta(seconds=30))
    state, present = absence.arrived("silent", None, 0, {"sensor": "s1"})
    assert present is None
    state, present = absence.arrived("silent", state, 10 * S, {"sensor": "s1"})
    assert present is None and state.last_seen_ms == 10 * S
    assert absence.judge("silent", state, 40 * S) is None
    fired = absence.judge("silent", state, 41 * S)
    assert fired is not None and fired.firing and fired.last_seen == 10 * S
    assert fired.labels == {"sensor": "s1"} and fired.value == 31.0
    state, present = absence.arrived("silent", state, 50 * S, {"sensor": "s1"})
    assert present is not None and not present.firing and present.last_seen == 50 * S
    state, present = absence.arrived("silent", state, 60 * S, {"sensor": "s1"})
    assert present is None  # reported 10 s ago
    state, present = absence.arrived("silent", state, 80 * S, {"sensor": "s1"})
    assert present is not None  # 30 s of records since: a judge may have fired on a backlog's view
    assert state == AbsenceState(last_seen_ms=80 * S, reported_ms=80 * S, labels={"sensor": "s1"})
    with pytest.raises(ConfigError, match="positive"):
        Absence(after=0)


# ---------------------------------------------------------------- alert rules


def _detection(firing: bool, second: float, last_seen: int | None = None, value: float = 1.0) -> Detection:
    return Detection(
        rule="r",
        firing=firing,
        value=value,
        message="m",
        labels={"sensor": "s1"},
        at=EPOCH + timedelta(seconds=second),
        last_seen=last_seen,
    )


def _replay(rule: Rule, detections: list[Detection]) -> tuple[AlertState | None, list[tuple[str, str]]]:
    state: AlertState | None = None
    sent = []
    for detection in detections:
        state, alert = decide(rule, "s1", state, detection)
        if alert is not None:
            sent.append((alert.status.value, alert.alert_id))
    return state, sent


def test_a_rule_opens_one_alert_and_resolves_it_with_the_same_id() -> None:
    rule = Rule("r", Threshold(above=1), severity=Severity.CRITICAL)
    state, sent = _replay(
        rule, [_detection(True, 1), _detection(True, 2), _detection(True, 3), _detection(False, 4)]
    )
    opened = f"r:s1:{int((EPOCH + timedelta(seconds=1)).timestamp() * 1000)}"
    assert sent == [("OPEN", opened), ("RESOLVED", opened)]
    assert state is not None and not state.open
    _, sent = _replay(rule, [_detection(False, 1), _detection(False, 2)])
    assert sent == []  # nothing open, nothing to resolve


def test_the_alert_carries_severity_value_labels_and_when() -> None:
    rule = Rule("r", Threshold(above=1), severity=Severity.CRITICAL)
    _, alert = decide(rule, "s1", None, _detection(True, 7, value=42.0))
    assert alert is not None
    assert (alert.severity, alert.value, alert.labels, alert.status) == (
        Severity.CRITICAL,
        42.0,
        {"sensor": "s1"},
        AlertStatus.OPEN,
    )
    assert alert.fired_at == EPOCH + timedelta(seconds=7) and alert.message == "s1: m"


def test_cooldown_suppresses_reopening_and_counts_what_it_dropped() -> None:
    rule = Rule("r", Threshold(above=1), cooldown=60)
    detections = [
        _detection(True, 0),
        _detection(False, 10),  # resolved at 10 s
        _detection(True, 20),  # suppressed
        _detection(True, 69),  # suppressed (69 < 70)
        _detection(True, 70),  # opens again
    ]
    state, sent = _replay(rule, detections)
    assert [status for status, _ in sent] == ["OPEN", "RESOLVED", "OPEN"]
    assert state is not None and state.open and state.suppressed == 2
    _, without = _replay(Rule("r", Threshold(above=1)), detections)
    assert [status for status, _ in without] == ["OPEN", "RESOLVED", "OPEN"]
    assert len({alert_id for _, alert_id in without}) == 2


def test_a_stale_absence_firing_is_ignored_after_its_clear() -> None:
    rule = Rule("r", Absence(after=30))
    detections = [
        _detection(True, 40, last_seen=10_000),
        _detection(False, 50, last_seen=50_000),
        _detection(True, 51, last_seen=10_000),  # a ticker's report that raced the clear
        _detection(True, 90, last_seen=50_000),  # silent again since the clear's record
    ]
    _, sent = _replay(rule, detections)
    assert [status for status, _ in sent] == ["OPEN", "RESOLVED", "OPEN"]


def test_rules_refuse_bad_names_and_options() -> None:
    with pytest.raises(ConfigError, match="illegal rule name"):
        Rule("a:b", Threshold(above=1))
    with pytest.raises(ConfigError, match="cooldown"):
        Rule("r", Threshold(above=1), cooldown=-1)
    with pytest.raises(ConfigError, match="severity"):
        Rule("r", Threshold(above=1), severity="high")  # type: ignore[arg-type]
