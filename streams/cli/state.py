"""`streams state get|scan`: read an agent's table from outside (interactive queries).

The answer is the table as its changelog held it when the command started: the latest committed value
of each key in each partition, deleted keys left out (see :mod:`streams.state_query`). Keys are shown
as text. Keys of ``bytes`` tables are shown as their text when that is printable UTF-8, otherwise as
``hex:`` followed by their hex digits; text that itself starts with ``hex:`` is shown in hex too, so
every shown key names exactly one key and ``get`` accepts it back as it was shown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Annotated, Any

import typer
from rich.status import Status
from rich.table import Table as RichTable
from rich.text import Text

from streams.cli._common import console, err_console, load_app, print_table, registry, settings
from streams.errors import ConfigError
from streams.serde.record import Record
from streams.state_query import Row, TableState, find_table, read_table

app = typer.Typer(
    help="Read agents' tables from their changelogs (interactive queries).", no_args_is_help=True
)

HEX_MARKER = "hex:"

_AppRef = Annotated[str, typer.Argument(metavar="MODULE:APP", help="The app whose agent holds the table.")]
_TableName = Annotated[str, typer.Argument(metavar="TABLE", help="The table's name (app.table(NAME, ...)).")]
_Agent = Annotated[
    str | None, typer.Option("--agent", "-a", help="The agent holding the table, when several hold one.")
]
_Json = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
_Timeout = Annotated[
    float, typer.Option(min=0.1, help="Give up when reading the changelog takes longer (seconds).")
]


@app.command("get")
def get(
    app_ref: _AppRef,
    table_name: _TableName,
    key: Annotated[str, typer.Argument(help="The key, as `scan` shows it (hex:... for binary keys).")],
    agent: _Agent = None,
    partition: Annotated[
        int | None,
        typer.Option(
            "--partition", "-p", min=0, help="Read only this partition (needed if several hold the key)."
        ),
    ] = None,
    as_json: _Json = False,
    timeout: _Timeout = 300.0,
) -> None:
    """The latest value of one key.

    A key the table does not hold (never set, or deleted) exits with code 1; with --json, stdout is
    then `null`, so a script tells a missing key (`null`) from a failure (nothing on stdout).
    """
    only = None if partition is None else [partition]
    with _reading(app_ref, table_name, agent, only, timeout) as state:
        wanted = parse_key(key, state.table.key)
        row = state.get(wanted, partition)
        if row is None:
            if as_json:
                print("null")
            _complain(
                f"no key {render_key(wanted)!r} in table {state.table.name} "
                f"(agent {state.agent.name}: {_rows(len(state))} in {_partitions(state)})"
            )
            raise typer.Exit(1)
    if as_json:
        print(json.dumps(_fields(row.value)))
        return
    table = RichTable("field", "value", title=f"{state.table.name} {render_key(row.key)}")
    for field, value in _fields(row.value).items():
        table.add_row(Text(field), Text(_cell(value)))
    print_table(table)
    # Below the table, not as its caption: a caption wraps at the table's width.
    _note(f"agent {state.agent.name}, {state.changelog} partition {row.partition} offset {row.offset}")


@app.command("scan")
def scan(
    app_ref: _AppRef,
    table_name: _TableName,
    agent: _Agent = None,
    partition: Annotated[
        list[int] | None,
        typer.Option("--partition", "-p", min=0, help="Only this partition of the table (repeatable)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many rows.")] = None,
    as_json: _Json = False,
    timeout: _Timeout = 300.0,
) -> None:
    """Every key and its latest value, in key order.

    The whole changelog is read even with --limit: a key's latest value may be its last record.
    """
    with _reading(app_ref, table_name, agent, partition, timeout) as state:
        rows = list(state.rows(limit))
    if as_json:
        print(json.dumps(scan_json(state, rows)))
        return
    if not rows:
        console.print(
            f"table {state.table.name} is empty (agent {state.agent.name}, {_source(state)})",
            markup=False,
            highlight=False,
        )
        return
    print_table(scan_table(state, rows))
    shown = f"first {len(rows):,} of {len(state):,} rows" if len(rows) < len(state) else _rows(len(state))
    _note(f"{shown}; agent {state.agent.name}, {_source(state)}")


def render_key(key: str | bytes) -> str:
    """How a key is shown (module docstring): text keys as they are, bytes keys as printable text or
    ``hex:`` and their hex digits."""
    if isinstance(key, str):
        return key
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return HEX_MARKER + key.hex()
    # Empty keys get the marker too: a blank cell would look like a missing key.
    if text and text.isprintable() and not text.startswith(HEX_MARKER):
        return text
    return HEX_MARKER + key.hex()


def parse_key(text: str, key_type: type[str] | type[bytes]) -> str | bytes:
    """The key ``text`` names, the inverse of :func:`render_key`."""
    if key_type is str or not text.startswith(HEX_MARKER):
        return text if key_type is str else text.encode("utf-8")
    try:
        return bytes.fromhex(text[len(HEX_MARKER) :])
    except ValueError as exc:
        raise ConfigError(f"key {text!r}: expected hex digits after {HEX_MARKER!r}") from exc


def scan_json(state: TableState[Any], rows: list[Row[Any]]) -> dict[str, Any]:
    """The document `scan --json` prints: where the rows come from, how many rows the table has
    (``total``, which --limit does not cut) and the rows in key order. A row is a key in a partition:
    a key written while handling messages of several partitions has a value in each."""
    return {
        "app": state.agent.app,
        "agent": state.agent.name,
        "table": state.table.name,
        "changelog": state.changelog,
        "partitions": list(state.partitions),
        "records": state.records,
        "total": len(state),
        "rows": [
            {
                "key": render_key(r.key),
                "partition": r.partition,
                "offset": r.offset,
                "value": _fields(r.value),
            }
            for r in rows
        ],
    }


def scan_table(state: TableState[Any], rows: list[Row[Any]]) -> RichTable:
    """One line per row (a key in a partition), one column per field of the record."""
    fields = list(state.table.value.model_fields)
    table = RichTable("key", "partition", *fields, title=f"table {state.table.name}")
    for row in rows:
        values = _fields(row.value)
        table.add_row(
            Text(render_key(row.key)), str(row.partition), *(Text(_cell(values[f])) for f in fields)
        )
    return table


def _fields(value: Record) -> dict[str, Any]:
    return value.model_dump(mode="json")


def _cell(value: Any) -> str:
    # Text as it is; everything else as JSON, so null, numbers and nested records stay distinguishable.
    return value if isinstance(value, str) else json.dumps(value)


def _note(text: str) -> None:
    console.print(text, style="dim", markup=False, highlight=False)


def _complain(text: str) -> None:
    # One line on stderr however long, like the CLI's error lines: a log keeps it whole.
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


def _source(state: TableState[Any]) -> str:
    return f"{state.records:,} records of {state.changelog} {_partitions(state)}"


def _partitions(state: TableState[Any]) -> str:
    return f"{_plural(len(state.partitions), 'partition')} {', '.join(map(str, state.partitions))}"


def _rows(count: int) -> str:
    return f"{count:,} {_plural(count, 'row')}"


@contextmanager
def _reading(
    app_ref: str, table_name: str, agent: str | None, partitions: list[int] | None, timeout: float
) -> Iterator[TableState[Any]]:
    """The table read from its changelog; the registry stays open in the body, where values decode."""
    holder, table = find_table(load_app(app_ref), table_name, agent)
    config = settings()
    with closing(registry(config)) as schemas:
        progress = ReadProgress()
        try:
            state = read_table(
                config, schemas, holder, table, partitions=partitions, timeout=timeout, progress=progress
            )
        finally:
            progress.stop()
        progress.done(state.records, len(state.partitions))
        yield state


class ReadProgress:
    """Reading progress on stderr, only for a read that takes over a second: a live line on a terminal,
    a line every few seconds otherwise, so a script's log shows it is not stuck."""

    _EVERY = 5.0

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._status: Status | None = None
        self._shown = False
        self._last_line = float("-inf")

    def __call__(self, records: int, partitions: int, elapsed: float) -> None:
        text = _read_line(records, partitions)
        self._shown = True
        if err_console.is_terminal:
            if self._status is None:
                self._status = err_console.status(text)
                self._status.start()
            else:
                self._status.update(text)
        elif elapsed - self._last_line >= self._EVERY:
            self._last_line = elapsed
            _complain(f"{text} ...")

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def done(self, records: int, partitions: int) -> None:
        if self._shown:
            elapsed = time.monotonic() - self._started
            _complain(f"{_read_line(records, partitions)} in {elapsed:.1f}s")


def _read_line(records: int, partitions: int) -> str:
    return (
        f"read {records:,} {_plural(records, 'record')} from {partitions} {_plural(partitions, 'partition')}"
    )


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"
