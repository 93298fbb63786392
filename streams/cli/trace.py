"""`streams trace`: every message of one correlation id across a pipeline's topics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from streams.cli._common import console, err_console, load_app, print_table, settings
from streams.errors import ConfigError
from streams.telemetry.follow import follow


def trace(
    correlation_id: Annotated[str, typer.Argument(help="The correlation id to follow.")],
    topics: Annotated[str | None, typer.Option(help="Comma-separated topics to scan.")] = None,
    app_ref: Annotated[
        str | None,
        typer.Option(
            "--app", metavar="MODULE:APP", help="Scan every topic of this app and its dead letters."
        ),
    ] = None,
) -> None:
    """List the messages of CORRELATION_ID in causal order, with agent, topic, offset, time and the
    latency of each hop; dead letters show their reason and the agent that dead-lettered them.

    A topic that does not exist yet (a dead-letter topic no worker has created) counts as empty.
    """
    names = [t.strip() for t in (topics or "").split(",") if t.strip()]
    if app_ref:
        application = load_app(app_ref)
        names += list(application.topics)
        names += [a.dead_letter_topic for a in application.agents.values() if a.dead_letter]
    if not names:
        raise ConfigError("give --topics or --app to say where to look")
    scanned = sorted(set(names))
    # Progress on stderr: stdout carries only the answer, so it can be piped.
    with Progress(
        TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), console=err_console, transient=True
    ) as progress:
        task = progress.add_task("scan", total=None)
        found = follow(
            settings(),
            correlation_id,
            scanned,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if found.missing:
        err_console.print(
            f"[dim]not created yet, so empty: {', '.join(found.missing)}[/]", highlight=False, soft_wrap=True
        )
    if not found.hops:
        console.print(
            f"no message with correlation id {correlation_id} in {len(scanned)} topic(s) "
            f"({found.scanned} message(s) read)",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    table = Table("#", "topic", "partition@offset", "time (UTC)", "sent by", "hop latency", "note")
    for number, hop in enumerate(found.hops, 1):
        when = datetime.fromtimestamp(hop.timestamp_ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
        table.add_row(
            str(number),
            "  " * hop.depth + hop.topic,
            f"{hop.partition}@{hop.offset}",
            when,
            hop.sent_by or "(origin)",
            f"{hop.latency_ms} ms" if hop.latency_ms is not None else "-",
            # Text, not markup: a reason is an exception message and may hold brackets.
            Text(f"dead letter: {hop.dead_letter_reason}", style="red") if hop.dead_letter_reason else "",
        )
    print_table(table)
