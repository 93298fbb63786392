"""``streams stack up|down|status``: the local Kafka + schema registry, from the command line.

A thin shell over :class:`streams.stack.LocalStack`: it adds the external-cluster check, human output,
and exit codes (0 on success; a StackError is one red ``error: ...`` line on stderr and exit 1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streams.errors import StackError
from streams.stack import LocalStack

app = typer.Typer(
    name="stack",
    help="A real Kafka broker and schema registry on 127.0.0.1, without Docker.",
    no_args_is_help=True,
    add_completion=False,
)

# soft_wrap: messages stay one line however narrow the terminal, so they can be grepped and copied whole.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# The same variables streams.config.Settings reads; set, they mean "use that cluster, not a local one".
EXTERNAL_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")

ClusterOption = Annotated[
    bool, typer.Option("--cluster", help="The 3-node cluster (ports 19092-19094, registry 18081).")
]


def _external() -> dict[str, str]:
    # Settings matches variable names case-insensitively, so this check does too.
    wanted = {name.lower(): name for name in EXTERNAL_VARS}
    return {wanted[key.lower()]: value for key, value in os.environ.items() if key.lower() in wanted}


@contextmanager
def _stack_errors() -> Iterator[None]:
    try:
        yield
    except StackError as exc:
        err.print(f"[red]error: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None


def _progress(message: str) -> None:
    out.print(f"[dim]•[/dim] {escape(message)}")


@app.command()
def up(
    cluster: ClusterOption = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for the servers to answer.")
    ] = 240.0,
) -> None:
    """Start Kafka (KRaft) and Apicurio Registry; fetch them from Maven Central on first run."""
    external = _external()
    if external:
        settings = ", ".join(f"{name}={value}" for name, value in external.items())
        out.print(f"external cluster configured ({escape(settings)}); not starting a local stack")
        return
    stack = LocalStack(cluster=cluster)
    with _stack_errors():
        stack.up(timeout=timeout, progress=_progress)
    out.print("[green]stack is up[/green]; point clients at it with:")
    out.print(f"  export KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap_servers}")
    out.print(f"  export SCHEMA_REGISTRY_URL={stack.registry_url}")


@app.command()
def down(
    cluster: ClusterOption = False,
    wipe: Annotated[
        bool,
        typer.Option("--wipe", help="Then delete the stack's data: every topic and schema (not downloads)."),
    ] = False,
) -> None:
    """Stop the servers `up` started (and only those)."""
    stack = LocalStack(cluster=cluster)
    with _stack_errors():
        stopped = stack.down(wipe=wipe)
    if stopped:
        out.print(f"stopped {', '.join(stopped)}")
    else:
        out.print("nothing was running")
    if wipe:
        out.print(f"deleted {escape(str(stack.data_dir))}: the next `streams stack up` starts empty")


@app.command()
def status(cluster: ClusterOption = False) -> None:
    """Show which servers are running, their pids and addresses."""
    with _stack_errors():
        statuses = LocalStack(cluster=cluster).status()
    table = Table(box=None, pad_edge=False)
    table.add_column("component")
    table.add_column("state")
    table.add_column("pid", justify="right")
    table.add_column("address")
    for item in statuses:
        state = "[green]running[/green]" if item.running else "[dim]stopped[/dim]"
        table.add_row(item.name, state, str(item.pid or "-"), item.address)
    out.print(table)
    external = _external()
    if external:
        names = ", ".join(external)
        out.print(f"[yellow]note:[/yellow] {names} set: clients use that cluster, not this stack")
