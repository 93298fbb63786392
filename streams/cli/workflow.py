"""`streams workflow start|ls|show|signal|cancel|breakers`: run and inspect an app's durable workflows.

Runs are read from the journal tables' changelogs (:mod:`streams.state_query`): what `ls` and `show`
print is each journal as its engine had committed it when the command started; circuit breakers the
same way, from the engines' ``breakers`` tables. Starting, signalling and cancelling go through
:class:`streams.Client`, exactly as code does.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import closing
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from streams.app import App
from streams.cli._common import console, err_console, load_app, print_table, registry, settings
from streams.cli._workflows import (
    STATUSES,
    PayloadReader,
    as_json_text,
    breaker_policy,
    breaker_rows,
    breakers_table,
    counts,
    detail,
    read_value,
    record_from_json,
    record_type,
    runs_table,
    status_of,
    steps_table,
    summary,
    took,
    when,
)
from streams.cli.state import ReadProgress
from streams.client import Client
from streams.config import Settings
from streams.errors import ConfigError, TopicError, WorkflowCancelled, WorkflowFailed
from streams.events import BreakerState, StepKind, StepStatus, WorkflowJournal, WorkflowStatus
from streams.serde.registry import SchemaRegistry
from streams.state_query import Row, find_table, read_table
from streams.workflows import WorkflowDefinition
from streams.workflows.breaker import BREAKERS
from streams.workflows.engine import JOURNAL

app = typer.Typer(
    help="Start, list, inspect, signal and cancel durable workflows; show their circuit breakers.",
    no_args_is_help=True,
)

_AppRef = Annotated[str, typer.Argument(metavar="MODULE:APP", help="The app that declares the workflow.")]
_Workflow = Annotated[str, typer.Argument(metavar="WORKFLOW", help="The workflow's name.")]
_Id = Annotated[str, typer.Argument(metavar="ID", help="The workflow id (as `start` printed it).")]
_Json = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
_ReadTimeout = Annotated[
    float, typer.Option("--read-timeout", min=0.1, help="Give up reading journals after this long (s).")
]


@app.command("start")
def start(
    app_ref: _AppRef,
    workflow: _Workflow,
    input_text: Annotated[
        str, typer.Option("--input", metavar="JSON|@FILE", help="The input record as JSON, or @file.")
    ],
    workflow_id: Annotated[
        str | None, typer.Option("--id", help="The workflow id (default: new); an existing id is kept.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the workflow's end; print its output.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="With --wait: give up after this long (s).")] = 60.0,
    as_json: _Json = False,
) -> None:
    """Start a workflow and print its id; with --wait, then its output.

    The input is checked against the workflow's input record before anything is sent. A failed or
    cancelled workflow exits with code 1 (with --json, its document says how it ended).
    """
    application = load_app(app_ref)
    definition = _definition(application, workflow)
    value = read_value(input_text, "--input")
    config = settings()
    with closing(registry(config)) as schemas:
        record = record_from_json(definition.input, value, schemas, "--input")

        async def run() -> None:
            async with Client(application, config, schemas) as client:
                started = await client.start(workflow, record, workflow_id=workflow_id)
                if not as_json:
                    print(started, flush=True)  # first, so a run that never ends can still be found
                if not wait:
                    if as_json:
                        print(json.dumps({"workflow": workflow, "workflow_id": started, "status": "started"}))
                    return
                await _print_end(client, definition, started, timeout, as_json)

        asyncio.run(run())


async def _print_end(
    client: Client, definition: WorkflowDefinition, workflow_id: str, within: float, as_json: bool
) -> None:
    document: dict[str, Any] = {"workflow": definition.name, "workflow_id": workflow_id}
    try:
        output = await client.result(definition.name, workflow_id, timeout=within)
    except WorkflowFailed as exc:
        status = "cancelled" if isinstance(exc, WorkflowCancelled) else "failed"
        if as_json:
            print(json.dumps({**document, "status": status, "error": str(exc)}))
        raise
    if as_json:
        print(json.dumps({**document, "status": "completed", "output": output.model_dump(mode="json")}))
    else:
        print(json.dumps(output.model_dump(mode="json")))


@app.command("ls")
def ls(
    app_ref: _AppRef,
    workflow: Annotated[
        str | None, typer.Argument(metavar="[WORKFLOW]", help="Only this workflow (default: all).")
    ] = None,
    status: Annotated[
        str | None, typer.Option(metavar="|".join(STATUSES), help="Only runs in this status.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the most recently started runs.")] = None,
    as_json: _Json = False,
    read_timeout: _ReadTimeout = 300.0,
) -> None:
    """List workflow runs with their status and progress, oldest first.

    Each run shows its steps done of steps journaled, its start and its last change; then how many
    runs of the workflows listed are in each status, whatever --status shows.
    """
    if status is not None and status.lower() not in STATUSES:
        raise ConfigError(f"--status {status!r}: choose one of {', '.join(STATUSES)}")
    application = load_app(app_ref)
    names = [_definition(application, workflow).name] if workflow else list(application.workflows)
    if not names:
        raise ConfigError(f"app {application.name} declares no workflow")
    config = settings()
    with closing(registry(config)) as schemas:
        journals, not_run = _all_journals(application, names, config, schemas, read_timeout)
    journals.sort(key=lambda j: (j.started_at, j.workflow, j.workflow_id))
    shown = [j for j in journals if status is None or status_of(j) == status.lower()]
    if limit is not None:
        shown = shown[-limit:]
    tally = counts(journals)
    if as_json:
        runs = [summary(j) for j in shown]
        document = {"app": application.name, "workflows": names, "not_run": not_run, "counts": tally}
        print(json.dumps({**document, "runs": runs}))
        return
    for name in not_run:
        _note_err(f"workflow {name} has no journal yet: no worker has run it")
    if shown:
        print_table(runs_table([summary(j) for j in shown]))
    else:
        console.print("no runs" + (f" {status.lower()}" if status else ""), markup=False, highlight=False)
    total = ", ".join(f"{n} {s}" for s, n in tally.items() if n) or "none"
    _note(f"{len(journals)} run(s) of {', '.join(names)}: {total}")


@app.command("show")
def show(
    app_ref: _AppRef,
    workflow: _Workflow,
    workflow_id: _Id,
    as_json: _Json = False,
    read_timeout: _ReadTimeout = 300.0,
) -> None:
    """Show one run: its input, output and every step.

    Each step shows its status, attempts, timings, deadline and result or error, and what a circuit
    breaker decided for it; payloads are decoded with the registry. Then the breakers of the
    capabilities the run called, as its partition's engine keeps them now, and the `streams trace`
    command that follows the run across topics.
    """
    application = load_app(app_ref)
    definition = _definition(application, workflow)
    config = settings()
    with closing(registry(config)) as schemas:
        row = _journal(app_ref, application, definition, workflow_id, config, schemas, read_timeout)
        journal = row.value
        shown = detail(journal, definition, PayloadReader(schemas, application.specialists), app_ref)
        guarded = {s.name for s in journal.steps if s.kind is StepKind.CALL} & set(application.breakers)
        states = (
            _breakers(application, definition.name, config, schemas, read_timeout, [row.partition])
            if guarded
            else None
        )
        shown["breakers"] = [
            b
            for b in breaker_rows(definition.name, states or [], application.breakers, _now())
            if b["capability"] in guarded
        ]
    if as_json:
        print(json.dumps(shown))
        return
    _show_text(shown)


def _show_text(shown: dict[str, Any]) -> None:
    lines = [
        f"workflow {shown['workflow']}  id {shown['workflow_id']}  status {shown['status']}",
        f"started {when(shown['started'])}  updated {when(shown['updated'])} (UTC)"
        + (f"  took {took(shown['duration_s'])}" if shown["duration_s"] is not None else ""),
    ]
    if shown["error"]:
        lines.append(f"error: {shown['error']}")
    lines += [f"input: {as_json_text(shown['input'])}"]
    if shown["output"] is not None:
        lines.append(f"output: {as_json_text(shown['output'])}")
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if shown["steps"]:
        print_table(steps_table(shown))
    else:
        console.print("no steps yet", markup=False, highlight=False)
    if shown["breakers"]:
        _note("circuit breakers of the capabilities it called, as its partition's engine keeps them now:")
        print_table(breakers_table(shown["breakers"]))
    for waiting in shown["signals_waiting"]:
        console.print(
            f"signal {waiting['name']} ({when(waiting['at'])}) waits for the code to ask: "
            f"{as_json_text(waiting['value'])}",
            markup=False,
            highlight=False,
        )
    _note(f"correlation id {shown['correlation_id']}; trace it: {shown['trace']}")


@app.command("signal")
def signal(
    app_ref: _AppRef,
    workflow: _Workflow,
    workflow_id: _Id,
    name: Annotated[
        str, typer.Argument(help="The signal's name, as the code asks for it (wf.signal(NAME)).")
    ],
    value_text: Annotated[
        str, typer.Option("--value", metavar="JSON|@FILE", help="The signal's record as JSON, or @file.")
    ],
    type_ref: Annotated[
        str,
        typer.Option(
            "--type",
            metavar="MODULE:RecordClass",
            help="The record class the code asks for (wf.signal(NAME, RecordClass)).",
        ),
    ],
    read_timeout: _ReadTimeout = 300.0,
) -> None:
    """Send signal NAME with a record to a running workflow.

    The record's class is needed because only the workflow's code names it; the value is checked
    against it before anything is sent. A signal the code has not asked for yet is kept for it.
    """
    application = load_app(app_ref)
    definition = _definition(application, workflow)
    model = record_type(type_ref)
    value = read_value(value_text, "--value")
    config = settings()
    with closing(registry(config)) as schemas:
        record = record_from_json(model, value, schemas, "--value")
        journal = _journal(app_ref, application, definition, workflow_id, config, schemas, read_timeout).value
        if journal.status is not WorkflowStatus.RUNNING:
            raise ConfigError(
                f"workflow {workflow} ({workflow_id}) has ended ({status_of(journal)}): "
                "a signal would change nothing"
            )

        async def run() -> None:
            async with Client(application, config, schemas) as client:
                await client.signal(workflow, workflow_id, name, record)

        asyncio.run(run())
    waiting = any(
        s.kind is StepKind.SIGNAL and s.name == name and s.status is StepStatus.PENDING for s in journal.steps
    )
    then = "it was waiting for it" if waiting else "it is kept until the code asks for it"
    console.print(f"sent signal {name} to {workflow} {workflow_id}; {then}", markup=False, highlight=False)


@app.command("cancel")
def cancel(
    app_ref: _AppRef,
    workflow: _Workflow,
    workflow_id: _Id,
    reason: Annotated[str | None, typer.Option(help="Why: kept in the journal and told to waiters.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the engine confirms the end.")
    ] = True,
    timeout: Annotated[float, typer.Option(min=0.1, help="With --wait: give up after this long (s).")] = 30.0,
    read_timeout: _ReadTimeout = 300.0,
) -> None:
    """Cancel a running workflow.

    It stops where it is; answers to the steps it waits for are then ignored. A workflow that has
    ended already is left as it ended (exit code 0).
    """
    application = load_app(app_ref)
    definition = _definition(application, workflow)
    config = settings()
    with closing(registry(config)) as schemas:
        journal = _journal(app_ref, application, definition, workflow_id, config, schemas, read_timeout).value
        if journal.status is not WorkflowStatus.RUNNING:
            console.print(
                f"workflow {workflow} {workflow_id} has ended already ({status_of(journal)}): "
                "nothing to cancel",
                markup=False,
                highlight=False,
            )
            return

        async def run() -> str:
            async with Client(application, config, schemas) as client:
                await client.cancel(workflow, workflow_id, reason)
                if not wait:
                    return "cancel sent; the engine ends it when it reads the request"
                try:
                    await client.result(workflow, workflow_id, timeout=timeout)
                except WorkflowCancelled as exc:
                    return f"cancelled: {exc.reason}"
                except WorkflowFailed as exc:
                    return f"it failed before the cancel arrived: {exc}"
                return "it completed before the cancel arrived"

        outcome = asyncio.run(run())
    console.print(f"workflow {workflow} {workflow_id}: {outcome}", markup=False, highlight=False)


@app.command("breakers")
def breakers(
    app_ref: _AppRef,
    workflow: Annotated[
        str | None, typer.Argument(metavar="[WORKFLOW]", help="Only this workflow's (default: all).")
    ] = None,
    as_json: _Json = False,
    read_timeout: _ReadTimeout = 300.0,
) -> None:
    """Show the circuit breakers the workflows' engines keep, per partition and capability.

    Every partition of every workflow keeps a copy of each breaker, told of the others' changes; a
    copy that differs has not read the latest news yet. Each shows its state (an open one whose
    cool-down is over lets its next call through as a trial), its failures within the window, when
    it opened, how often, and its last error. A breaker nothing has reached yet is not listed: it is
    closed.
    """
    application = load_app(app_ref)
    names = [_definition(application, workflow).name] if workflow else list(application.workflows)
    if not names:
        raise ConfigError(f"app {application.name} declares no workflow")
    config = settings()
    now = _now()
    shown: list[dict[str, Any]] = []
    not_run: list[str] = []
    with closing(registry(config)) as schemas:
        for name in names:
            states = _breakers(application, name, config, schemas, read_timeout)
            if states is None:
                not_run.append(name)
            else:
                shown += breaker_rows(name, states, application.breakers, now)
    declared = {capability: breaker_policy(capability, p) for capability, p in application.breakers.items()}
    if as_json:
        print(
            json.dumps({"app": application.name, "declared": declared, "not_run": not_run, "breakers": shown})
        )
        return
    for name in not_run:
        _note_err(f"workflow {name} has no breakers table yet: no worker has run it")
    if shown:
        print_table(breakers_table(shown))
    else:
        console.print("no breaker has been asked yet", markup=False, highlight=False)
    for line in declared.values() or [f"app {application.name} declares no breaker (app.breaker)"]:
        _note(line)


# ----------------------------------------------------------------- reading journals


def _now() -> datetime:
    return datetime.now(UTC)


def _breakers(
    application: App,
    name: str,
    config: Settings,
    schemas: SchemaRegistry,
    timeout: float,
    partitions: list[int] | None = None,
) -> list[Row[BreakerState]] | None:
    """The breakers workflow ``name``'s engine keeps (in ``partitions``); None before any run."""
    agent, table = find_table(application, BREAKERS.name, name)
    try:
        return list(read_table(config, schemas, agent, table, partitions=partitions, timeout=timeout).rows())
    except TopicError:
        return None


def _definition(application: App, workflow: str) -> WorkflowDefinition:
    definition = application.workflows.get(workflow)
    if definition is None:
        known = ", ".join(application.workflows) or "none"
        raise ConfigError(f"app {application.name} has no workflow {workflow}; workflows: {known}")
    return definition


def _read(
    application: App, name: str, config: Settings, schemas: SchemaRegistry, timeout: float
) -> list[Row[WorkflowJournal]] | None:
    """Every journal of workflow ``name`` (and its partition); None when its journal has no
    changelog (never run)."""
    agent, table = find_table(application, JOURNAL.name, name)
    progress = ReadProgress()
    try:
        state = read_table(config, schemas, agent, table, timeout=timeout, progress=progress)
    except TopicError:
        return None
    finally:
        progress.stop()
    progress.done(state.records, len(state.partitions))
    return list(state.rows())


def _all_journals(
    application: App, names: list[str], config: Settings, schemas: SchemaRegistry, timeout: float
) -> tuple[list[WorkflowJournal], list[str]]:
    journals: list[WorkflowJournal] = []
    not_run: list[str] = []
    for name in names:
        found = _read(application, name, config, schemas, timeout)
        if found is None:
            not_run.append(name)
        else:
            journals += [row.value for row in found]
    return journals, not_run


def _journal(
    app_ref: str,
    application: App,
    definition: WorkflowDefinition,
    workflow_id: str,
    config: Settings,
    schemas: SchemaRegistry,
    timeout: float,
) -> Row[WorkflowJournal]:
    journals = _read(application, definition.name, config, schemas, timeout)
    if journals is None:
        raise ConfigError(f"workflow {definition.name} has no run {workflow_id}: no worker has run it yet")
    for row in journals:
        if row.value.workflow_id == workflow_id:
            return row
    raise ConfigError(
        f"workflow {definition.name} has no run {workflow_id} ({len(journals)} run(s); "
        f"`streams workflow ls {app_ref} {definition.name}` lists them)"
    )


def _note(text: str) -> None:
    console.print(text, style="dim", markup=False, highlight=False)


def _note_err(text: str) -> None:
    err_console.print(text, style="dim", markup=False, highlight=False, soft_wrap=True)
