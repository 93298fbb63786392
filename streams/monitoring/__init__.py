"""Monitoring pipelines: windowed metric summaries, anomaly detectors and alert rules, on tables.

Builds on the declarations (``App``, windows, tables) and nothing below them: a :class:`Monitor`
declares ordinary agents, so the worker, the twin and the chaos tests run it like any other. Its
state (detector states, open alerts) lives in tables, so it survives crashes and moves with
partitions; it never reads a clock except through the worker's ticker.

- :class:`Summarize` folds records into :class:`~streams.events.WindowSummary` windows (count, sum,
  min, max and a :class:`Sketch` for quantiles); :func:`mean`, :func:`quantile`, :func:`rate` read them.
- Detectors: :class:`Threshold`, :class:`ZScore` (EWMA), :class:`MAD`, :class:`RateOfChange` and
  :class:`Absence` (no record for a while).
- :class:`Rule` gives a detector a name, a severity and a cool-down; :class:`Monitor` runs rules
  over a topic and sends ``OPEN`` / ``RESOLVED`` :class:`~streams.events.Alert` events.
- :class:`AgentWatch` turns workers' heartbeats into one :class:`~streams.events.AgentStatus` per agent
  and alerts on agents (down, lag growing, errors, dead letters) with those same rules; its
  :class:`Bounds` say when, :class:`WatchSettings` read them and its topics from the environment.
"""

from streams.monitoring.absence import Absence
from streams.monitoring.agent_rules import Bounds
from streams.monitoring.aggregate import Summarize, combine, mean, quantile, rate, sum_rate
from streams.monitoring.detectors import MAD, Detector, RateOfChange, Threshold, Verdict, ZScore
from streams.monitoring.monitor import Monitor
from streams.monitoring.rules import Rule
from streams.monitoring.settings import WatchSettings
from streams.monitoring.watch import AgentWatch
from streams.sketch import Sketch

__all__ = [
    "MAD",
    "Absence",
    "AgentWatch",
    "Bounds",
    "Detector",
    "Monitor",
    "RateOfChange",
    "Rule",
    "Sketch",
    "Summarize",
    "Threshold",
    "Verdict",
    "WatchSettings",
    "ZScore",
    "combine",
    "mean",
    "quantile",
    "rate",
    "sum_rate",
]
