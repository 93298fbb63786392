"""Consumer lag without asking the broker: the offsets librdkafka already reports in its statistics.

Every ``statistics.interval.ms`` librdkafka hands the application a JSON report with, per fetched
partition, the high watermark and last stable offset from its latest fetch responses, the group's
committed offset and the fetch position. The report arrives through ``consume()``, so on the worker's
poll thread, the only thread allowed to touch its consumer; :class:`Watermarks` keeps the latest one
and telemetry reads it from any thread. No extra broker requests, no consumer calls from elsewhere.

Lag of a partition = its end (last stable offset, which is what read_committed consumers can reach;
the high watermark when there is none) minus the group's committed position. The committed position
is the higher of what librdkafka saw committed and what the worker itself committed, because
exactly-once workers commit through the producer's transaction, which librdkafka's consumer never
sees. A partition nothing was ever committed for, that the worker has received nothing from either,
is where the group starts: its first offset (the low watermark) for an agent that starts at the
earliest message, else its fetch position. (The fetch position alone would call a partition whose
messages sit prefetched, held back while the worker catches up elsewhere, caught up.) A partition
whose every received message the worker has finished and committed counts from the client's position
as well, which moves past transaction markers where the committed position stays before them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from streams.agent import Agent

log = logging.getLogger("streams.telemetry")

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ReportedOffsets:
    """One partition as of the latest statistics report; None where librdkafka had no valid offset."""

    end: int | None
    committed: int | None
    fetch_position: int | None
    app_position: int | None = None  # the next offset the client gives the worker (past control records)
    start: int | None = None  # the low watermark: the partition's first offset


def _valid(value: Any) -> int | None:
    # librdkafka reports "no offset" as negative logical offsets (-1001 and friends).
    return value if isinstance(value, int) and value >= 0 else None


def parse_statistics(stats_json: str) -> dict[TP, ReportedOffsets]:
    """The per-partition offsets in one librdkafka statistics report (internal partitions skipped)."""
    return partitions_of(json.loads(stats_json))


def partitions_of(stats: Mapping[str, Any]) -> dict[TP, ReportedOffsets]:
    """The per-partition offsets of a decoded statistics report."""
    found: dict[TP, ReportedOffsets] = {}
    for topic, topic_stats in (stats.get("topics") or {}).items():
        for partition_stats in (topic_stats.get("partitions") or {}).values():
            partition = partition_stats.get("partition", -1)
            if not isinstance(partition, int) or partition < 0:
                continue  # -1 is librdkafka's queue for messages not yet assigned a partition
            stable = _valid(partition_stats.get("ls_offset"))
            found[(topic, partition)] = ReportedOffsets(
                end=stable if stable is not None else _valid(partition_stats.get("hi_offset")),
                committed=_valid(partition_stats.get("committed_offset")),
                fetch_position=_valid(partition_stats.get("next_offset")),
                app_position=_valid(partition_stats.get("app_offset")),
                start=_valid(partition_stats.get("lo_offset")),
            )
    return found


def group_joined(stats: Mapping[str, Any]) -> bool:
    """Whether the report shows the consumer a settled member of its group (its assignment, possibly
    empty, received)."""
    group = stats.get("cgrp") or {}
    return bool(group.get("state") == "up" and group.get("join_state") == "steady")


def partition_lag(
    offsets: ReportedOffsets | None,
    worker_committed: int | None,
    settled: bool = False,
    from_start: bool = False,
) -> int | None:
    """Messages between the group's committed position and the partition's end; None if unknown.

    ``settled``: the worker has finished and committed everything it received from the partition, so
    what is left is what the client has not given it yet: from the client's position to the end. That
    position moves past control records (an exactly-once producer's transaction marker after each
    transaction), which the committed position stays before: an idle exactly-once partition has no lag.
    ``from_start``: with nothing committed, the group reads from the partition's first offset."""
    if offsets is None or offsets.end is None:
        return None
    known = [p for p in (offsets.committed, worker_committed) if p is not None]
    if settled and offsets.app_position is not None:
        known.append(offsets.app_position)
    starts_at = offsets.start if from_start and offsets.start is not None else offsets.fetch_position
    position = max(known) if known else starts_at
    if position is None:
        return None
    # A commit can run ahead of a statistics report taken just before it: never report negative lag.
    return max(0, offsets.end - position)


class Watermarks:
    """The latest statistics report of one consumer. Written by its poll thread, read by any thread:
    each report replaces the whole mapping, so a reader sees one report or the next, never a mix."""

    def __init__(self, chained: Callable[[str], None] | None = None) -> None:
        self._chained = chained
        self._partitions: Mapping[TP, ReportedOffsets] = {}
        self.reports = 0
        self.joined = False  # once the consumer has joined its group; it stays True through rebalances

    def on_statistics(self, stats_json: str) -> None:
        """librdkafka's ``stats_cb``."""
        try:
            stats = json.loads(stats_json)
            self._partitions = partitions_of(stats)
            self.joined = self.joined or group_joined(stats)
            self.reports += 1
        except (ValueError, AttributeError, TypeError) as exc:
            # Lag goes stale rather than the poll thread (which runs this callback) failing the worker.
            log.warning("unreadable librdkafka statistics: %s", exc)
        if self._chained is not None:
            self._chained(stats_json)

    def get(self, tp: TP) -> ReportedOffsets | None:
        return self._partitions.get(tp)


def with_statistics(agent: Agent[Any], interval: float) -> tuple[Agent[Any], Watermarks]:
    """A copy of ``agent`` whose consumer reports statistics every ``interval`` seconds to the returned
    :class:`Watermarks`.

    A ``stats_cb`` the agent already configured still gets every report, and its own
    ``statistics.interval.ms`` wins (it asked for that cadence).
    """
    config = dict(agent.consumer_config)
    watermarks = Watermarks(chained=config.get("stats_cb"))
    config["stats_cb"] = watermarks.on_statistics
    config.setdefault("statistics.interval.ms", max(1, round(interval * 1000)))
    return replace(agent, consumer_config=config), watermarks
