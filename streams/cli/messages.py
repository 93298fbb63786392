"""`streams publish` and `streams tail`: typed events in and out of a topic from the shell."""

from __future__ import annotations

import json
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from streams.cli._common import console, load_app, registry, settings
from streams.errors import ConfigError, SerializationError
from streams.publish import Publisher
from streams.tail import TailedMessage, tail


def publish(
    topic: Annotated[str, typer.Argument(help="Topic to publish to.")],
    value: Annotated[str | None, typer.Option(help="The event as a JSON object.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="A JSON-lines file, one event object per line.", dir_okay=False)
    ] = None,
    key: Annotated[str | None, typer.Option(help="Message key (the same for every event).")] = None,
    key_field: Annotated[
        str | None, typer.Option(help="Take each event's key from this field of the event.")
    ] = None,
    correlation_id: Annotated[
        str | None, typer.Option(help="Correlation id (default: new per event).")
    ] = None,
    app_ref: Annotated[
        str | None,
        typer.Option(
            "--app", metavar="MODULE:APP", help="Use this app's declared schema, not the registry's."
        ),
    ] = None,
) -> None:
    """Validate events against the topic's Avro schema, then publish them.

    Every event is checked before the first one is sent: on bad input nothing is published.
    """
    if (value is None) == (file is None):
        raise ConfigError("give exactly one of --value or --file")
    if key is not None and key_field is not None:
        raise ConfigError("give at most one of --key or --key-field")
    events = [_parse_json(value, "--value")] if value is not None else _read_jsonl(file)  # type: ignore[arg-type]
    with Publisher(settings()) as publisher:
        _publish_events(
            publisher, topic, events, key, key_field, correlation_id, app_ref, from_file=file is not None
        )


def _publish_events(
    publisher: Publisher,
    topic: str,
    events: list[Any],
    key: str | None,
    key_field: str | None,
    correlation_id: str | None,
    app_ref: str | None,
    *,
    from_file: bool,
) -> None:
    declared = load_app(app_ref).topics.get(topic) if app_ref else None
    if app_ref and declared is None:
        raise ConfigError(f"app {app_ref} declares no topic {topic}")
    encoder = publisher.encoder(declared or topic)
    keys: list[str | None] = []
    for line, event in enumerate(events, start=1):
        where = f"line {line}: " if from_file else ""
        try:
            encoder.validate(event)
        except SerializationError as exc:
            raise SerializationError(f"{where}{exc}") from exc
        keys.append(_key_of(event, key, key_field, where))
    started = time.monotonic()
    with _progress(len(events) > 1) as progress:
        task = progress.add_task(f"publishing to {topic}", total=len(events))
        for event, event_key in zip(events, keys, strict=True):
            publisher.publish(declared or topic, event, key=event_key, correlation_id=correlation_id)
            progress.advance(task)
        publisher.flush()
    elapsed = time.monotonic() - started
    console.print(
        f"published {publisher.delivered} event(s) to [bold]{topic}[/] "
        f"(schema id {encoder.schema_id}) in {elapsed:.2f}s"
    )


def tail_command(
    topic: Annotated[str, typer.Argument(help="Topic to read.")],
    from_beginning: Annotated[
        bool, typer.Option(help="Start at the oldest message, not the newest.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many messages.")] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.1, help="Stop when no message arrives for this many seconds.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per message.")] = False,
) -> None:
    """Print decoded messages (key, value, headers) as they arrive; Ctrl-C stops."""
    config = settings()
    count = 0
    with closing(registry(config)) as schemas:
        messages = tail(
            config, schemas, topic, from_beginning=from_beginning, limit=limit, idle_timeout=timeout
        )
        for message in messages:
            count += 1
            if as_json:
                print(json.dumps(_as_dict(message), default=str), flush=True)
            else:
                _show(message)
    if not as_json:
        console.print(f"[dim]{count} message(s)[/]")


def _show(message: TailedMessage) -> None:
    when = datetime.fromtimestamp(message.timestamp_ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
    console.print(
        f"[cyan]{message.topic}[/] p{message.partition}@{message.offset} {when} key=[bold]{message.key}[/]"
    )
    if message.error:
        console.print(f"  [red]undecodable:[/] {message.error}")
    else:
        console.print("  value:", json.dumps(message.value, default=str), markup=False)
    console.print("  headers:", json.dumps(message.headers), markup=False, style="dim")


def _as_dict(message: TailedMessage) -> dict[str, Any]:
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp_ms": message.timestamp_ms,
        "key": message.key,
        "headers": message.headers,
        "schema_id": message.schema_id,
        "value": message.value,
        "error": message.error,
    }


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc


def _read_jsonl(path: Path) -> list[Any]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    events = [_parse_json(line, f"{path} line {n}") for n, line in enumerate(lines, 1) if line.strip()]
    if not events:
        raise ConfigError(f"{path} holds no events")
    return events


def _key_of(event: Any, key: str | None, key_field: str | None, where: str) -> str | None:
    if key_field is None:
        return key
    if not isinstance(event, dict) or event.get(key_field) is None:
        raise ConfigError(f"{where}event has no field {key_field!r} to take the key from")
    return str(event[key_field])


def _progress(visible: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not visible,
        transient=True,
    )
