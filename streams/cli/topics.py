"""`streams topics ...`: make the cluster match an app's topic declarations."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from streams.admin import TopicAdmin
from streams.cli._common import console, load_app, print_table, registry, settings

app = typer.Typer(help="Create and check the topics an app declares.", no_args_is_help=True)


@app.command("apply")
def apply(
    app_ref: Annotated[str, typer.Argument(metavar="MODULE:APP", help="The app whose topics to apply.")],
    alter: Annotated[bool, typer.Option(help="Also change existing topics that differ.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Only report what would change.")] = False,
) -> None:
    """Create missing topics, report (or --alter) differences, and register the value schemas.

    Safe to run again: unchanged topics are reported as up to date. Topics are never deleted.
    """
    application = load_app(app_ref)
    config = settings()
    schemas = None if dry_run else registry(config)
    try:
        admin = TopicAdmin(config, schemas)
        reports = admin.apply(application.topics.values(), alter=alter, dry_run=dry_run)
    finally:
        if schemas is not None:
            schemas.close()
    table = Table("topic", "status", "schema id", "differences")
    for report in reports:
        style = {"created": "green", "altered": "yellow", "differs": "red"}.get(report.action, "")
        table.add_row(
            report.topic,
            f"[{style}]{report.action}[/]" if style else report.action,
            str(report.schema_id) if report.schema_id is not None else "-",
            "; ".join(report.differences) or "-",
        )
    print_table(table)
    if any(r.action == "differs" for r in reports):
        console.print("some topics differ from their declaration; run again with --alter to change them")
        raise typer.Exit(3)
