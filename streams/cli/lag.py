"""`streams lag`: how far each agent's consumer group is behind, per partition, from the broker's view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from streams.cli._common import load_app, print_table, settings
from streams.errors import ConfigError
from streams.runner import select_agents
from streams.telemetry.lag import LagReader, PartitionLag


def lag(
    app_ref: Annotated[
        str | None,
        typer.Argument(metavar="[MODULE:APP]", help="The app whose agents' groups to report."),
    ] = None,
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="Only this agent of the app (repeatable).")
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="A consumer group by name, app or not (repeatable)."),
    ] = None,
) -> None:
    """Committed offset, end offset and lag per partition of each agent's consumer group.

    The end is the last stable offset (what read_committed agents can reach). Where the group never
    committed, committed shows "-" and lag (marked *) counts from the partition's first offset. Lag
    is 0 when only transaction commit markers lie ahead.
    """
    if app_ref is None and not group:
        raise ConfigError("name an app (MODULE:APP) or a consumer group (--group)")
    if agent and app_ref is None:
        raise ConfigError("--agent needs the app (MODULE:APP) it belongs to")
    groups: dict[str, Sequence[str] | None] = {}
    if app_ref is not None:
        for chosen in select_agents(load_app(app_ref), agent):
            groups[chosen.group_id] = list(chosen.topics)
    for name in group or []:
        groups.setdefault(name, None)
    rows = LagReader(settings()).lag(groups)
    print_table(_table(rows, groups))


def _table(rows: list[PartitionLag], groups: dict[str, Sequence[str] | None]) -> Table:
    table = Table("group", "topic", "partition", "committed", "end", "lag", title="consumer lag")
    for name in sorted(groups):
        mine = [r for r in rows if r.group == name]
        if not mine:
            table.add_row(name, "-", "-", "-", "-", "-", end_section=True)
            continue
        for row in mine:
            table.add_row(
                row.group,
                row.topic,
                str(row.partition),
                "-" if row.committed is None else str(row.committed),
                str(row.end),
                f"{row.lag}*" if row.from_start else str(row.lag),
            )
        total = f"{sum(r.lag for r in mine)}{'*' if any(r.from_start for r in mine) else ''}"
        table.add_row(name, "[bold]total[/]", "", "", "", f"[bold]{total}[/]", end_section=True)
    if any(r.from_start for r in rows):
        table.caption = "* nothing committed: counted from the partition's first offset"
    return table
