"""`streams run`: attach an app's agents to their topics and process until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from streams.agent import Agent, parse_start
from streams.app import App
from streams.cli._common import load_app
from streams.errors import ConfigError
from streams.runner import run_agents, select_agents, supervise
from streams.telemetry.config import TelemetryConfig


def run(
    app_ref: Annotated[str, typer.Argument(metavar="MODULE:APP", help="The app whose agents to run.")],
    agent: Annotated[
        list[str] | None, typer.Option("--agent", "-a", help="Run only this agent (repeatable).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes; each runs every chosen agent.")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve /metrics, /health and /ready on 127.0.0.1:PORT (0: any free port, logged; "
            "with --workers N, worker i gets PORT+i). Default: $STREAMS_METRICS_PORT, else off.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            metavar="earliest|latest|TIME",
            help="Where the chosen agents start if their group has no committed position yet (a new "
            "agent): the oldest message, the newest, or the first at or after an ISO 8601 TIME (UTC "
            "unless it gives an offset). Default: each agent's own `start` option.",
        ),
    ] = None,
    heartbeat_interval: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds between AgentHeartbeat events (0: none). "
            "Default: $STREAMS_HEARTBEAT_INTERVAL, else 10.",
        ),
    ] = None,
) -> None:
    """Run agents as members of their consumer groups; more workers share the partitions.

    A new agent starts where --start or its `start` option says (the oldest message by default); later
    runs resume from the group's committed position. SIGTERM or Ctrl-C finishes received work and
    commits before exiting.
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
    chosen = select_agents(application, agent)  # fail fast, before any process starts
    if start is not None:
        _start_at(application, chosen, start)
    telemetry = _telemetry(metrics_port, heartbeat_interval)
    if workers > 1:
        argv = ["run", app_ref, "--log-level", log_level, *[f"--agent={a}" for a in agent or []]]
        argv += [] if start is None else [f"--start={start}"]
        argv += [f"--heartbeat-interval={telemetry.heartbeat_interval}"]
        port = telemetry.metrics_port
        # One port per process: worker i serves on PORT+i (or each on a free port of its own).
        extra = (
            [[f"--metrics-port={port + i if port else 0}"] for i in range(workers)]
            if port is not None
            else None
        )
        raise typer.Exit(supervise(argv, workers, extra))
    asyncio.run(run_agents(application, agent, handle_signals=True, telemetry=telemetry))


def _start_at(application: App, chosen: list[Agent[Any]], start: str) -> None:
    """Make ``--start`` the start of the chosen agents. It only matters to a group that has committed
    nothing yet, so a restart with the same command resumes where the group stopped."""
    where = parse_start(start)
    for declared in chosen:
        application.agents[declared.name] = dataclasses.replace(declared, start=where)


def _telemetry(metrics_port: int | None, heartbeat_interval: float | None) -> TelemetryConfig:
    """The STREAMS_* telemetry settings, with the options given on the command line on top."""
    overrides = {"metrics_port": metrics_port, "heartbeat_interval": heartbeat_interval}
    try:
        # BaseSettings' own keyword parameters make mypy reject a dict of field values.
        return TelemetryConfig(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid telemetry settings (STREAMS_* variables): {problems}") from exc
