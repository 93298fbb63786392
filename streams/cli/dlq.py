"""`streams dlq ...`: inspect and replay dead letters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from streams.cli._common import console, settings
from streams.worker.deadletter import replay as replay_dead_letters

app = typer.Typer(help="Dead-letter topics: replay them after a fix.", no_args_is_help=True)


@app.command("replay")
def replay(
    topic: Annotated[str, typer.Argument(help="Dead-letter topic, e.g. myapp.myagent.dlq.")],
    to: Annotated[str | None, typer.Option(help="Send here instead of each letter's source topic.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most this many.")] = None,
) -> None:
    """Re-publish dead letters to the topic they came from; each is replayed once.

    Run `streams tail TOPIC --from-beginning` first to see the reasons (dlq-* headers).
    """
    with Progress(
        TextColumn("replaying {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(topic, total=None)
        report = replay_dead_letters(
            settings(),
            topic,
            to=to,
            limit=limit,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if not report.replayed:
        console.print(f"nothing to replay in {topic}")
        return
    targets = ", ".join(f"{n} to {t}" for t, n in sorted(report.by_topic.items()))
    console.print(f"replayed {report.replayed} dead letter(s): {targets}")
