"""`streams lag`: how far each agent's consumer group is behind, per partition, from the broker's view;
with ``--recommend``, how many workers each group needs (streams.telemetry.scaling)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from streams.cli._common import load_app, print_table, settings
from streams.errors import ConfigError
from streams.runner import select_agents
from streams.telemetry.lag import LagReader, PartitionLag, Progress, recommend
from streams.telemetry.scaling import DEFAULT_DRAIN_WITHIN, Rates

Scaling = dict[str, tuple[Rates, int, int | None]]  # group: rates, members, recommended workers


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
    recommend_workers: Annotated[
        bool,
        typer.Option(
            "--recommend", help="Also measure rates and recommend a worker count per group (takes --over)."
        ),
    ] = False,
    over: Annotated[
        float, typer.Option("--over", min=0.5, help="Seconds between the two readings rates come from.")
    ] = 3.0,
    drain_within: Annotated[
        float,
        typer.Option(
            "--drain-within", min=1.0, help="Seconds within which the recommendation clears the lag."
        ),
    ] = DEFAULT_DRAIN_WITHIN,
) -> None:
    """Committed offset, end offset and lag per partition of each agent's consumer group.

    The end is the last stable offset (what read_committed agents can reach). Where the group never
    committed, committed shows "-" and lag (marked *) counts from the partition's first offset. Lag
    is 0 when only transaction commit markers lie ahead. --recommend reads positions and ends twice,
    --over seconds apart, and adds per group: messages arriving and handled per second, its consumers
    now, and the workers it needs: ceil((in/s + lag / drain-within) / (done/s per consumer) - 0.1),
    from 1 to the partitions.
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
    reader = LagReader(settings())
    measured = _measure(reader, groups, over) if recommend_workers else None
    rows = reader.lag(groups)
    scaling = None if measured is None else _recommendations(rows, *measured, drain_within)
    print_table(_table(rows, groups, scaling))


def _measure(
    reader: LagReader, groups: dict[str, Sequence[str] | None], over: float
) -> tuple[dict[str, Progress], dict[str, Progress], dict[str, int]]:
    """Each group's progress ``over`` seconds apart, and its consumers at the end."""
    before = reader.progress(groups)
    time.sleep(over)
    return before, reader.progress(groups), reader.members(groups)


def _recommendations(
    rows: list[PartitionLag],
    before: dict[str, Progress],
    after: dict[str, Progress],
    members: dict[str, int],
    drain_within: float,
) -> Scaling:
    scaling: Scaling = {}
    for name in after:
        waiting = sum(r.lag for r in rows if r.group == name)
        consumers = members.get(name, 0)
        rates, workers = recommend(before[name], after[name], waiting, consumers, drain_within)
        scaling[name] = (rates, consumers, workers)
    return scaling


def _table(
    rows: list[PartitionLag], groups: dict[str, Sequence[str] | None], scaling: Scaling | None
) -> Table:
    extra = ("in/s", "done/s", "workers", "recommended") if scaling is not None else ()
    table = Table("group", "topic", "partition", "committed", "end", "lag", *extra, title="consumer lag")
    blank = ("",) * len(extra)
    for name in sorted(groups):
        mine = [r for r in rows if r.group == name]
        if not mine:
            table.add_row(name, "-", "-", "-", "-", "-", *("-",) * len(extra), end_section=True)
            continue
        for row in mine:
            table.add_row(
                row.group,
                row.topic,
                str(row.partition),
                "-" if row.committed is None else str(row.committed),
                str(row.end),
                f"{row.lag}*" if row.from_start else str(row.lag),
                *blank,
            )
        total = f"{sum(r.lag for r in mine)}{'*' if any(r.from_start for r in mine) else ''}"
        table.add_row(
            name,
            "[bold]total[/]",
            "",
            "",
            "",
            f"[bold]{total}[/]",
            *_scaling(scaling, name),
            end_section=True,
        )
    if any(r.from_start for r in rows):
        table.caption = "* nothing committed: counted from the partition's first offset"
    return table


def _scaling(scaling: Scaling | None, group: str) -> tuple[str, ...]:
    if scaling is None:
        return ()
    if group not in scaling:
        return ("-",) * 4
    rates, members, workers = scaling[group]
    return (
        f"{rates.incoming:.1f}",
        f"{rates.handled:.1f}",
        str(members),
        "-" if workers is None else f"[bold]{workers}[/]",
    )
