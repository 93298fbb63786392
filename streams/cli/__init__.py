"""The `streams` command line. User mistakes end as one `error:` line and a non-zero exit, not a traceback."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from streams.cli import agents, codegen, dlq, lag, messages, monitor, stack, state, topics, trace, workflow
from streams.cli._common import err_console
from streams.errors import StreamsError

cli = typer.Typer(
    name="streams",
    help="Typed multi-agent pipelines on Apache Kafka: run the local stack, manage topics, "
    "publish and tail typed events, run agents, read their tables, run and inspect workflows, watch "
    "them live.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cli.add_typer(stack.app, name="stack")
cli.add_typer(topics.app, name="topics")
cli.add_typer(dlq.app, name="dlq")
cli.add_typer(state.app, name="state")
cli.add_typer(workflow.app, name="workflow")
cli.command("publish")(messages.publish)
cli.command("tail")(messages.tail_command)
cli.command("codegen")(codegen.codegen)
cli.command("run")(agents.run)
cli.command("lag")(lag.lag)
cli.command("trace")(trace.trace)
cli.command("monitor")(monitor.monitor)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    try:
        cli(args=argv, prog_name="streams")  # standalone mode: ends with SystemExit
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except StreamsError as exc:
        # Escaped: a message may hold brackets (`pip install 'streams[otlp]'`) that are not markup.
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def run() -> None:
    sys.exit(main())
