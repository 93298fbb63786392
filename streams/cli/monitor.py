"""`streams monitor`: a live view of every agent, from the agent watch's status and alert topics."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console, RenderableType
from rich.live import Live

from streams.board import BoardReader, BoardTopics, render
from streams.cli._common import console, registry, settings
from streams.errors import ConfigError, TransportError
from streams.monitoring import WatchSettings


class Sort(StrEnum):
    health = "health"
    name = "name"
    throughput = "throughput"
    lag = "lag"
    errors = "errors"


_ONCE_ROWS = 1_000_000  # --once prints every agent: there is no screen to fit


def monitor(
    once: Annotated[
        bool, typer.Option("--once", help="Print one snapshot (every agent) and exit, for scripts.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print the snapshot as JSON.")] = False,
    sort: Annotated[Sort, typer.Option(help="Order of the agents (health: worst first).")] = Sort.health,
    interval: Annotated[float, typer.Option(help="Seconds between screen refreshes.")] = 1.0,
    duration: Annotated[
        float | None,
        typer.Option(
            "--for",
            metavar="SECONDS",
            help="Leave the live view after this long, keeping its last frame on the screen "
            "(default: until Ctrl-C).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="With --once: seconds to read the topics to their end before giving up.")
    ] = 30.0,
    status_topic: Annotated[
        str | None,
        typer.Option(
            help="The watch's status topic (default: STREAMS_WATCH_STATUS_TOPIC or streams.agent-status)."
        ),
    ] = None,
    alerts_topic: Annotated[
        str | None,
        typer.Option(help="The watch's alert topic (default: STREAMS_WATCH_ALERTS_TOPIC or streams.alerts)."),
    ] = None,
    workflow_topic: Annotated[
        str | None,
        typer.Option(help="Its workflow counts topic (default: STREAMS_WATCH_WORKFLOW_STATUS_TOPIC)."),
    ] = None,
) -> None:
    """Every agent's instances, throughput, handler latency, lag, errors, dead letters, workflow runs
    and open alerts, refreshed every second until Ctrl-C (or for --for SECONDS).

    It reads what the agent watch writes (run it with `streams run agents.watch:app`), from the
    cluster KAFKA_BOOTSTRAP_SERVERS names. An agent is shown down when none of its workers has sent a
    heartbeat within the watch's bound (STREAMS_WATCH_DOWN_AFTER).
    """
    if as_json and not once:
        raise ConfigError("--json prints one snapshot: use it with --once")
    if not interval > 0 or not timeout > 0 or (duration is not None and not duration > 0):
        raise ConfigError("--interval, --timeout and --for must be positive numbers of seconds")
    if once and duration is not None:
        raise ConfigError("--for bounds the live view: --once prints one snapshot at once")
    if not once and not console.is_terminal:
        raise ConfigError("the live view needs a terminal; in scripts use --once (with --json for JSON)")
    watch = WatchSettings()
    topics = BoardTopics(
        status=status_topic or watch.status_topic,
        alerts=alerts_topic or watch.alerts_topic,
        workflows=workflow_topic or watch.workflow_status_topic,
    )
    config = settings()
    schemas = registry(config)
    try:
        with BoardReader(config, schemas, topics) as reader:
            if once:
                _once(reader, sort, as_json, timeout)
            else:
                _live(reader, sort, interval, config.kafka_bootstrap_servers, duration)
    finally:
        schemas.close()


def _once(reader: BoardReader, sort: Sort, as_json: bool, timeout: float) -> None:
    if not reader.catch_up(timeout):
        raise TransportError(
            f"could not read {reader.topics.status} to its end within {timeout:g} s"
            + (f" ({reader.problem})" if reader.problem else "")
        )
    snapshot = reader.board.snapshot(datetime.now(UTC), sort.value)
    if as_json:
        print(json.dumps(snapshot.to_json(), indent=2))
        return
    width = console.width if console.is_terminal else 160
    Console(file=console.file, width=width).print(
        render(snapshot, width=width, height=_ONCE_ROWS, sort=sort.value)
    )


def _live(
    reader: BoardReader, sort: Sort, interval: float, cluster: str, duration: float | None = None
) -> None:
    ends = None if duration is None else time.monotonic() + duration
    reader.catch_up(min(5.0, interval * 5))  # a first picture soon, even while a long history loads
    title = f"streams monitor · {cluster}"
    screen = Console()

    def frame() -> RenderableType:
        snapshot = reader.board.snapshot(datetime.now(UTC), sort.value)
        size = screen.size
        note = f"  ! {reader.problem}" if reader.problem else ""
        return render(snapshot, width=size.width, height=size.height, title=title + note, sort=sort.value)

    with Live(frame(), console=screen, screen=True, auto_refresh=False) as live:
        while ends is None or (left := ends - time.monotonic()) > 0:
            reader.poll(interval if ends is None else min(interval, left))
            live.update(frame(), refresh=True)
    # The live screen is gone with its alternate buffer: a view that ended on its own leaves its last
    # frame on the ordinary screen, for whoever (or whatever script) ran it for a while.
    screen.print(frame())
