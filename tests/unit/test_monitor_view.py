"""`streams monitor` without a broker: agents judged at a moment (down when silent past their bound,
alerts attached, workflows summed), the screen fitted to a console at 100 agents, the JSON snapshot,
and one-line errors for bad options and an unreachable cluster."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from streams.board import Board, render
from streams.board.snapshot import Snapshot
from streams.cli.monitor import Sort, _live
from streams.events import (
    AgentStatus,
    Alert,
    AlertStatus,
    Severity,
    WorkerState,
    WorkerStatus,
    WorkflowCounts,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def status(
    agent: str,
    *,
    silent: float = 1.0,
    throughput: float = 10.0,
    lag: int = 0,
    states: tuple[WorkerState, ...] = (WorkerState.RUNNING,),
    down_after: float = 30.0,
) -> AgentStatus:
    seen = NOW - timedelta(seconds=silent)
    workers = [
        WorkerStatus(
            worker_id=f"{agent}-w{i}",
            host="h",
            pid=100 + i,
            state=state.value,
            partitions=2,
            lag=lag,
            throughput=throughput / len(states),
            processed_total=1000,
            errors_total=3,
            dead_letters_total=1,
            last_seen=seen,
        )
        for i, state in enumerate(states)
    ]
    return AgentStatus(
        agent=agent,
        workers=workers,
        instances=len(workers),
        throughput=throughput,
        latency_p50_ms=2.5,
        latency_p99_ms=40.0,
        errors_total=3 * len(workers),
        dead_letters_total=len(workers),
        lag=lag * len(workers),
        last_seen=seen,
        down_after_ms=round(down_after * 1000),
    )


def alert(agent: str, rule: str, state: AlertStatus = AlertStatus.OPEN, minutes: int = 1) -> Alert:
    return Alert(
        alert_id=f"{rule}:{agent}:1",
        rule=rule,
        severity=Severity.CRITICAL if rule == "agent-down" else Severity.WARNING,
        message=f"{agent}: something about {rule}",
        labels={"agent": agent, "metric": "x"},
        fired_at=NOW - timedelta(minutes=minutes),
        status=state,
    )


def test_agents_are_judged_at_the_moment_of_the_snapshot() -> None:
    board = Board()
    board.status("shop.orders", status("shop.orders", throughput=120, lag=5))
    board.status("shop.billing", status("shop.billing", silent=31))  # past its 30 s bound
    board.status("shop.mail", status("shop.mail", states=(WorkerState.STOPPED,)))
    board.status("shop.search", status("shop.search", lag=900))
    board.status("shop.gone", status("shop.gone"))
    board.status("shop.gone", None)  # a tombstone removes it
    board.alert("shop.search", alert("shop.search", "lag-growing"))
    board.alert("shop.orders", alert("shop.orders", "dlq-growing"))
    board.alert("shop.orders", alert("shop.orders", "dlq-growing", AlertStatus.RESOLVED))
    board.workflow_counts(
        "shop.orders#0",
        WorkflowCounts(agent="shop.orders", partition=0, running=2, completed=5, updated_at=NOW),
    )
    board.workflow_counts(
        "shop.orders#1", WorkflowCounts(agent="shop.orders", partition=1, running=1, failed=1, updated_at=NOW)
    )
    snapshot = board.snapshot(NOW)
    rows = {row.agent: row for row in snapshot.rows}
    assert [row.agent for row in snapshot.rows] == ["shop.billing", "shop.search", "shop.orders", "shop.mail"]
    assert {name: row.health for name, row in rows.items()} == {
        "shop.billing": "down",
        "shop.search": "alert",
        "shop.orders": "ok",
        "shop.mail": "stopped",
    }
    assert (
        rows["shop.billing"].instances,
        rows["shop.billing"].workers,
        rows["shop.billing"].throughput,
    ) == (0, 1, 0)
    assert rows["shop.billing"].latency_p99_ms is None and rows["shop.billing"].silent_s == 31
    assert rows["shop.orders"].throughput == 120 and rows["shop.orders"].latency_p99_ms == 40.0
    workflows = rows["shop.orders"].workflows
    assert workflows is not None and (workflows.running, workflows.completed, workflows.failed) == (3, 5, 1)
    assert [a.rule for a in snapshot.alerts] == ["lag-growing"]
    assert snapshot.summary.health == {"down": 1, "alert": 1, "ok": 1, "stopped": 1}
    # An open agent-down alert says down even while the status still looks fresh.
    board.alert("shop.orders", alert("shop.orders", "agent-down"))
    assert {r.agent: r.health for r in board.snapshot(NOW).rows}["shop.orders"] == "down"
    assert board.snapshot(NOW, "throughput").rows[0].agent == "shop.orders"


def _hundred() -> Snapshot:
    board = Board()
    for i in range(100):
        name = f"team{i % 7}.pipeline-stage-with-a-long-name-{i:03d}"
        silent = 45.0 if i % 25 == 3 else 2.0
        board.status(name, status(name, silent=silent, throughput=i * 13.7, lag=i * 50))
        if i % 10 == 4:
            board.alert(name, alert(name, "error-rate", minutes=i))
    return board.snapshot(NOW)


@pytest.mark.parametrize("width", [120, 80])
def test_a_hundred_agents_fit_the_screen_worst_first_with_a_summary(width: int) -> None:
    snapshot = _hundred()
    out = io.StringIO()
    screen = Console(file=out, width=width, height=40, color_system=None, legacy_windows=False)
    screen.print(render(snapshot, width=width, height=40, sort="health"))
    lines = out.getvalue().rstrip("\n").split("\n")
    assert len(lines) <= 40, f"{len(lines)} lines"
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    assert lines[1].startswith("100 agents · 4 down · 10 alert · 86 ok · 10 open alerts · ")
    assert "more agents not shown" in text
    header = next(line for line in lines if line.startswith("AGENT"))
    for column in ("HEALTH", "MSG/S", "LAG", "ALERTS"):
        assert column in header
    agent_lines = [line for line in lines if line.startswith("team")]
    assert [line.split()[1] for line in agent_lines[:4]] == ["down"] * 4  # worst first
    assert all(len(line.split()) > 4 for line in agent_lines)  # no row wrapped onto a second line
    assert "open alerts" in text and "error-rate" in text
    if width == 120:
        assert "P99ms" in header and "DLQ" in header
    shown = len(agent_lines)
    assert f"… {100 - shown} more agents not shown" in text


def test_an_empty_cluster_says_how_to_start_the_watch() -> None:
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(render(Board().snapshot(NOW), width=100, height=20))
    assert "0 agents" in out.getvalue() and "streams run agents.watch:app" in out.getvalue()


def test_the_json_snapshot_holds_every_agent_in_plain_types() -> None:
    data = json.loads(json.dumps(_hundred().to_json()))
    assert data["summary"]["agents"] == 100 and len(data["agents"]) == 100
    first = data["agents"][0]
    assert first["health"] == "down" and first["last_seen"].endswith("+00:00")
    assert {"agent", "instances", "throughput", "latency_p50_ms", "latency_p99_ms", "lag", "error_rate",
            "dead_letters_total", "workflows", "alerts"} <= set(first)  # fmt: skip
    assert len(data["alerts"]) == 10 and data["alerts"][0]["rule"] == "error-rate"


def _streams(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_options_and_an_unreachable_cluster_are_one_line_errors() -> None:
    result = _streams("monitor", "--json")
    assert (
        result.returncode == 1
        and result.stderr.strip() == "error: --json prints one snapshot: use it with --once"
    )
    result = _streams("monitor")  # stdout is a pipe here
    assert result.returncode == 1 and "the live view needs a terminal" in result.stderr
    result = _streams("monitor", "--once", "--interval", "0")
    assert result.returncode == 1 and "must be positive" in result.stderr
    result = _streams("monitor", "--for", "0")
    assert result.returncode == 1 and "must be positive" in result.stderr
    result = _streams("monitor", "--once", "--for", "5")
    assert result.returncode == 1 and "--for bounds the live view" in result.stderr
    result = _streams("monitor", "--once", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", KAFKA_TIMEOUT="2")
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach Kafka at 127.0.0.1:9"), line
    assert "Traceback" not in result.stderr and result.stdout == ""
    result = _streams("monitor", "--once", STREAMS_WATCH_DOWN_AFTER="soon")
    assert result.returncode == 1 and result.stderr.startswith(
        "error: invalid agent watch settings: STREAMS_WATCH_DOWN_AFTER"
    )


def test_an_engines_open_breakers_come_from_its_live_workers_and_their_alert_joins_its_row() -> None:
    board = Board()
    engine = status("shop.triage", states=(WorkerState.RUNNING, WorkerState.RUNNING))
    live, silent = engine.workers
    engine = engine.model_copy(
        update={
            "workers": [
                live.model_copy(update={"open_breakers": ["research"]}),
                silent.model_copy(
                    update={"open_breakers": ["billing"], "last_seen": NOW - timedelta(seconds=60)}
                ),
            ]
        }
    )
    board.status("shop.triage", engine)
    opened = alert("shop.triage/research", "breaker-open").model_copy(
        update={"labels": {"agent": "shop.triage", "capability": "research"}}
    )
    board.alert("shop.triage/research", opened)
    [row] = board.snapshot(NOW).rows
    assert row.open_breakers == ["research"] and row.health == "alert"
    assert [a.rule for a in row.alerts] == ["breaker-open"]
    assert json.loads(json.dumps(board.snapshot(NOW).to_json()))["agents"][0]["open_breakers"] == ["research"]


class _Reader:
    """A board reader whose topics hold one agent; it records how long it was asked to read."""

    def __init__(self) -> None:
        self.board = Board()
        self.board.status("shop.orders", status("shop.orders", silent=0.0))
        self.problem: str | None = None
        self.polls: list[float] = []

    def catch_up(self, timeout: float) -> bool:
        return True

    def poll(self, seconds: float) -> int:
        self.polls.append(seconds)
        time.sleep(seconds)
        return 0


def test_the_live_view_for_a_while_ends_on_time_and_leaves_its_last_frame(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reader = _Reader()
    began = time.monotonic()
    _live(reader, Sort.health, 0.2, "127.0.0.1:9092", duration=0.5)  # type: ignore[arg-type]
    took = time.monotonic() - began
    assert 0.5 <= took < 1.5, took
    assert len(reader.polls) == 3 and reader.polls[-1] < 0.2, reader.polls  # the last read is cut short
    out = capsys.readouterr().out
    assert "streams monitor · 127.0.0.1:9092" in out and "shop.orders" in out
