"""Lag from librdkafka statistics: parsing the report, the lag arithmetic, and wiring the callback."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest

from streams import App
from streams.events import TaskRequested
from streams.telemetry.watermarks import (
    ReportedOffsets,
    Watermarks,
    parse_statistics,
    partition_lag,
    with_statistics,
)

pytestmark = pytest.mark.unit


def _partition(number: int, **offsets: int) -> dict[str, Any]:
    base = {
        "partition": number,
        "fetch_state": "active",
        "next_offset": -1001,
        "app_offset": -1001,
        "committed_offset": -1001,
        "lo_offset": 0,
        "hi_offset": -1,
        "ls_offset": -1,
        "consumer_lag": -1,
    }
    return {**base, **offsets}


def _stats(topics: dict[str, list[dict[str, Any]]]) -> str:
    """A librdkafka statistics report, trimmed to the parts lag reads (plus some it must ignore)."""
    return json.dumps(
        {
            "name": "rdkafka#consumer-1",
            "type": "consumer",
            "brokers": {"127.0.0.1:9092/1": {"state": "UP"}},
            "topics": {
                name: {"topic": name, "partitions": {str(p["partition"]): p for p in partitions}}
                for name, partitions in topics.items()
            },
            "cgrp": {"state": "up"},
        }
    )


def test_statistics_give_end_committed_and_fetch_position_per_partition() -> None:
    report = _stats(
        {
            "tasks": [
                _partition(
                    0, hi_offset=120, ls_offset=118, committed_offset=100, next_offset=110, lo_offset=7
                ),
                _partition(1, hi_offset=50, ls_offset=-1, committed_offset=-1001, next_offset=-1001),
                _partition(-1, hi_offset=999),  # librdkafka's internal unassigned-partition queue
            ]
        }
    )
    assert parse_statistics(report) == {
        # The last stable offset is the end a read_committed consumer can reach.
        ("tasks", 0): ReportedOffsets(end=118, committed=100, fetch_position=110, start=7),
        # Without one, the high watermark; logical offsets (-1001) are "unknown".
        ("tasks", 1): ReportedOffsets(end=50, committed=None, fetch_position=None, start=0),
    }


def test_a_report_without_topics_has_no_partitions() -> None:
    assert parse_statistics(json.dumps({"name": "c", "topics": {}})) == {}
    assert parse_statistics(json.dumps({"name": "c"})) == {}


@pytest.mark.parametrize(
    ("offsets", "worker_committed", "lag"),
    [
        (ReportedOffsets(end=120, committed=100, fetch_position=110), None, 20),
        # An exactly-once worker commits through its producer: librdkafka's figure is stale.
        (ReportedOffsets(end=120, committed=100, fetch_position=110), 115, 5),
        # A late report after a newer consumer commit: the higher committed position wins.
        (ReportedOffsets(end=120, committed=119, fetch_position=120), 110, 1),
        # Nothing committed anywhere yet: how far the fetch position is behind.
        (ReportedOffsets(end=120, committed=None, fetch_position=90), None, 30),
        # A commit newer than the report's end is never negative lag.
        (ReportedOffsets(end=100, committed=None, fetch_position=None), 104, 0),
        (ReportedOffsets(end=None, committed=10, fetch_position=10), 10, None),
        (ReportedOffsets(end=100, committed=None, fetch_position=None), None, None),
        (None, 10, None),
    ],
)
def test_lag_is_end_minus_the_committed_position(
    offsets: ReportedOffsets | None, worker_committed: int | None, lag: int | None
) -> None:
    assert partition_lag(offsets, worker_committed) == lag


@pytest.mark.parametrize(
    ("offsets", "lag"),
    [
        # Settled after a transaction: its marker sits at 100, the client's position is past it (101),
        # and so is the end: no work left, though the commit stays at 100.
        (ReportedOffsets(end=101, committed=100, fetch_position=101, app_position=101), 0),
        # Six transactions' markers later, still nothing to do.
        (ReportedOffsets(end=106, committed=100, fetch_position=106, app_position=106), 0),
        # Fetched up to the end, but three of them not given to the worker yet: real lag.
        (ReportedOffsets(end=106, committed=100, fetch_position=106, app_position=103), 3),
        # Nothing given to the worker yet (no position reported): as an unsettled partition.
        (ReportedOffsets(end=106, committed=100, fetch_position=106), 6),
    ],
)
def test_a_settled_partition_lags_by_what_the_client_has_not_given_the_worker(
    offsets: ReportedOffsets, lag: int
) -> None:
    assert partition_lag(offsets, 100, settled=True) == lag
    assert partition_lag(offsets, 100) == (offsets.end or 0) - 100, "unsettled: from the committed position"


def test_with_nothing_committed_an_agent_reading_from_the_start_has_the_whole_partition_ahead() -> None:
    # Everything prefetched (fetch position at the end), nothing handed over or committed yet.
    prefetched = ReportedOffsets(end=250, committed=None, fetch_position=250, start=10)
    assert partition_lag(prefetched, None, from_start=True) == 240
    assert partition_lag(prefetched, None) == 0, "an agent starting at the latest offset starts at the end"
    assert partition_lag(prefetched, 100, from_start=True) == 150, "what it received or committed counts"
    assert partition_lag(replace(prefetched, start=None), None, from_start=True) == 0


def test_watermarks_keep_the_latest_report_and_pass_it_on() -> None:
    forwarded: list[str] = []
    watermarks = Watermarks(chained=forwarded.append)
    first = _stats({"t": [_partition(0, hi_offset=5, ls_offset=5, committed_offset=2)]})
    second = _stats({"t": [_partition(1, hi_offset=9, ls_offset=9, committed_offset=9)]})
    watermarks.on_statistics(first)
    assert watermarks.get(("t", 0)) == ReportedOffsets(end=5, committed=2, fetch_position=None, start=0)
    watermarks.on_statistics(second)
    assert watermarks.get(("t", 0)) is None, "a partition missing from the newest report is gone"
    assert watermarks.get(("t", 1)) == ReportedOffsets(end=9, committed=9, fetch_position=None, start=0)
    assert forwarded == [first, second]
    assert watermarks.reports == 2


def test_an_unreadable_report_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    watermarks = Watermarks()
    watermarks.on_statistics(_stats({"t": [_partition(0, hi_offset=5, ls_offset=5)]}))
    with caplog.at_level(logging.WARNING, logger="streams.telemetry"):
        watermarks.on_statistics("{not json")
    assert "unreadable librdkafka statistics" in caplog.text
    assert watermarks.get(("t", 0)) is not None, "the last good report stays"


def _app_agent(**options: Any) -> Any:
    app = App("lagapp")
    topic = app.topic("lag.in", value=TaskRequested)

    @app.agent(topic, **options)
    async def worker(task: TaskRequested, ctx: Any) -> None:
        return None

    return app.agents["worker"]


def test_with_statistics_turns_on_reports_and_keeps_the_agent_otherwise_equal() -> None:
    agent = _app_agent(concurrency=4, consumer_config={"session.timeout.ms": 6000})
    instrumented, watermarks = with_statistics(agent, interval=0.5)
    assert instrumented.consumer_config == {
        "session.timeout.ms": 6000,
        "statistics.interval.ms": 500,
        "stats_cb": watermarks.on_statistics,
    }
    assert instrumented.concurrency == 4 and instrumented.group_id == agent.group_id
    assert agent.consumer_config == {"session.timeout.ms": 6000}, "the declared agent is not changed"


def test_with_statistics_chains_the_agents_own_callback_and_cadence() -> None:
    seen: list[str] = []
    agent = _app_agent(consumer_config={"stats_cb": seen.append, "statistics.interval.ms": 5000})
    instrumented, watermarks = with_statistics(agent, interval=1.0)
    assert instrumented.consumer_config["statistics.interval.ms"] == 5000
    report = _stats({"t": [_partition(0, hi_offset=3, ls_offset=3)]})
    instrumented.consumer_config["stats_cb"](report)
    assert seen == [report]
    assert watermarks.get(("t", 0)) is not None
