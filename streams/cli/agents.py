"""`streams run`: attach an app's agents to their topics and process until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated

import typer

from streams.cli._common import load_app
from streams.errors import ConfigError
from streams.worker.runner import run_agents, select_agents, supervise


def run(
    app_ref: Annotated[str, typer.Argument(metavar="MODULE:APP", help="The app whose agents to run.")],
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="Run only this agent (repeatable).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes; each runs every chosen agent.")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run agents as members of their consumer groups; more workers share the partitions.

    A new agent starts where its `start` option says (latest by default); later runs resume from the
    group's committed position. SIGTERM or Ctrl-C drains in-flight work and commits before exiting.
    """
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise ConfigError(f"unknown log level {log_level!r}")
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
    )
    # The registry client logs every HTTP request at INFO; schema lookups are not worth a line each.
    logging.getLogger("httpx2").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    application = load_app(app_ref)
    select_agents(application, agent)  # fail fast, before any process starts
    if workers > 1:
        argv = ["run", app_ref, "--log-level", log_level, *[f"--agent={a}" for a in agent or []]]
        raise typer.Exit(supervise(argv, workers))
    asyncio.run(run_agents(application, agent, handle_signals=True))
