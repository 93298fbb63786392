"""The monitor's screen: a summary line, one table row per agent, the open alerts; fitted to a console.

Made to stay readable at hundreds of agents: rows are sorted (worst health first by default) and cut
to the screen's height with a line saying how many are not shown; columns a narrow screen cannot
hold are left out, least useful first; cells never wrap (a long agent name ends in an ellipsis).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from streams.board.snapshot import AgentRow, OpenAlert, Snapshot

_HEALTH_STYLE = {"down": "bold red", "alert": "yellow", "starting": "cyan", "ok": "green", "stopped": "dim"}
_SEVERITY_STYLE = {"CRITICAL": "bold red", "WARNING": "yellow", "INFO": "cyan"}
_MAX_ALERT_LINES = 5
_AGENT_MAX = 48


def _agent_min(width: int) -> int:
    """Room kept for agent names before columns go: more on a wide screen, where names tell apart."""
    return 30 if width >= 110 else 20


def number(value: float | None, digits: int = 1) -> str:
    """Short human numbers: 950, 12.3k, 4.5M; "-" for unknown."""
    if value is None:
        return "-"
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.{digits}f}{suffix}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.0f}s"
    if value < 3600:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.0f}h"


def _workflows(row: AgentRow) -> str:
    w = row.workflows
    if w is None:
        return ""
    failed = w.failed + w.cancelled
    return f"{number(w.running, 0)}/{number(w.completed, 0)}/{number(failed, 0)}"


def shorten(name: str, width: int) -> str:
    """``name`` cut in the middle to ``width``: an agent's group id ends in its own name, so both
    ends matter (``shop-eu.ord…fulfilment``)."""
    if len(name) <= width:
        return name
    tail = (width - 1) // 2
    return name[: width - 1 - tail] + "…" + name[len(name) - tail :]


def _alerts(row: AgentRow) -> Text:
    if not row.alerts:
        return Text("")
    first = row.alerts[0]
    more = f" +{len(row.alerts) - 1}" if len(row.alerts) > 1 else ""
    return Text(first.rule + more, style=_SEVERITY_STYLE.get(first.severity, ""))


@dataclass(frozen=True)
class _Column:
    header: str
    width: int
    cell: Callable[[AgentRow], str | Text]
    priority: int  # lower: kept longer on a narrow screen
    left: bool = False


_COLUMNS = [
    _Column("HEALTH", 8, lambda r: Text(r.health, style=_HEALTH_STYLE[r.health]), 0, left=True),
    _Column("INST", 5, lambda r: f"{r.instances}/{r.workers}", 1),
    _Column("MSG/S", 7, lambda r: number(r.throughput), 0),
    _Column("P50ms", 7, lambda r: number(r.latency_p50_ms), 3),
    _Column("P99ms", 7, lambda r: number(r.latency_p99_ms), 2),
    _Column("LAG", 7, lambda r: number(r.lag, 1), 1),
    _Column("ERR/S", 6, lambda r: number(r.error_rate), 2),
    _Column("ERRORS", 6, lambda r: number(r.errors_total), 5),
    _Column("RETRY", 6, lambda r: number(r.retries_total), 6),
    _Column("DLQ", 6, lambda r: number(r.dead_letters_total), 2),
    _Column("PAUSED", 6, lambda r: number(r.paused_partitions), 6),
    _Column("WF run/ok/fail", 14, _workflows, 4),
    _Column("SEEN", 5, lambda r: _seconds(r.silent_s), 5),
    _Column("ALERTS", 14, _alerts, 1, left=True),
]


def _fit_columns(width: int, with_workflows: bool) -> list[_Column]:
    """The columns that fit ``width`` beside the agent column, in screen order."""
    chosen = [c for c in _COLUMNS if with_workflows or not c.header.startswith("WF")]

    def needed(columns: list[_Column]) -> int:
        # Each cell has one space of padding either side; the agent column keeps its minimum.
        return _agent_min(width) + 2 + sum(c.width + 2 for c in columns)

    while chosen and needed(chosen) > width:
        least = max(chosen, key=lambda c: (c.priority, _COLUMNS.index(c)))
        chosen.remove(least)
    return chosen


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary_line(snapshot: Snapshot) -> Text:
    s = snapshot.summary
    line = Text()
    line.append(_count(s.agents, "agent"), style="bold")
    for health, count in s.health.items():
        line.append(" · ")
        line.append(f"{count} {health}", style=_HEALTH_STYLE.get(health, ""))
    line.append(" · ")
    alerts = _count(s.open_alerts, "open alert") + (
        f" ({s.critical_alerts} critical)" if s.critical_alerts else ""
    )
    line.append(alerts, style="bold red" if s.critical_alerts else ("yellow" if s.open_alerts else ""))
    line.append(f" · {number(s.throughput)} msg/s · lag {number(s.lag)} · {_count(s.instances, 'instance')}")
    if snapshot.undecodable:
        line.append(f" · {snapshot.undecodable} undecodable records", style="red")
    return line


def _alert_line(alert: OpenAlert) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{alert.severity:<8} ", style=_SEVERITY_STYLE.get(alert.severity, ""))
    line.append(f"{alert.rule:<12} ", style="bold")
    line.append(f"since {alert.since.astimezone().strftime('%H:%M:%S')}  {alert.message}")
    return line


def render(
    snapshot: Snapshot, *, width: int, height: int, title: str = "streams monitor", sort: str = "health"
) -> RenderableType:
    """The whole screen for a console ``width`` columns wide and ``height`` lines high."""
    header = Text(no_wrap=True, overflow="ellipsis")
    header.append(title, style="bold")
    header.append(
        f"  {snapshot.at.astimezone().strftime('%Y-%m-%d %H:%M:%S')}  sorted by {sort}", style="dim"
    )
    summary = summary_line(snapshot)
    summary.no_wrap, summary.overflow = True, "ellipsis"

    # Alerts may take a quarter of a short screen: the agents' rows come first.
    most = max(1, min(_MAX_ALERT_LINES, (height - 6) // 4))
    alert_lines = [_alert_line(a) for a in snapshot.alerts[:most]]
    if len(snapshot.alerts) > most:
        alert_lines.append(Text(f"… {_count(len(snapshot.alerts) - most, 'more open alert')}", style="dim"))
    alerts_block: list[RenderableType] = (
        [Text("open alerts", style="bold"), *alert_lines]
        if alert_lines
        else [Text("no open alerts", style="dim")]
    )

    # Lines besides the rows: header, summary, blank, the table's head, the "more" line, blank, alerts.
    fixed = 6 + len(alerts_block)
    room = max(1, height - fixed)
    rows = snapshot.rows[:room]
    hidden = len(snapshot.rows) - len(rows)

    columns = _fit_columns(width, any(r.workflows is not None for r in snapshot.rows))
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", expand=False)
    longest = max((len(r.agent) for r in rows), default=5)
    room_for_agent = width - 2 - sum(c.width + 2 for c in columns)
    agent_width = max(5, min(longest, _AGENT_MAX, room_for_agent))
    table.add_column("AGENT", no_wrap=True, overflow="ellipsis", width=agent_width)
    for column in columns:
        justify: Literal["left", "right"] = "left" if column.left else "right"
        table.add_column(
            column.header, no_wrap=True, overflow="ellipsis", justify=justify, width=column.width
        )
    for row in rows:
        table.add_row(shorten(row.agent, agent_width), *(column.cell(row) for column in columns))

    parts: list[RenderableType] = [header, summary, Text("")]
    if snapshot.rows:
        parts.append(table)
    else:
        parts.append(
            Text("no agents yet: is the agent watch running? (streams run agents.watch:app)", style="dim")
        )
    if hidden:
        parts.append(
            Text(
                f"… {_count(hidden, 'more agent')} not shown (--sort to reorder, --once --json for all)",
                style="dim",
            )
        )
    parts += [Text(""), *alerts_block]
    return Group(*parts)


__all__ = ["number", "render", "shorten", "summary_line"]
