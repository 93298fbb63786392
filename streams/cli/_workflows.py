"""What `streams workflow` reads and shows: record values given on the command line, journals as
summaries and details with their payloads decoded, and the tables they are printed as.

Nothing here touches Kafka: values come in as JSON, journals as records, payloads through a registry,
so every rule of what is accepted and shown is checked without a broker.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.table import Table as RichTable
from rich.text import Text

from streams.errors import ConfigError, DeserializationError, SerializationError
from streams.events import (
    BreakerState,
    BreakerStatus,
    JournalStep,
    StepKind,
    StepStatus,
    WorkflowJournal,
    WorkflowStatus,
)
from streams.serde import schema as avro_schema
from streams.serde.codec import AvroDecoder, AvroEncoder, RecordDecoder
from streams.serde.record import Record
from streams.serde.registry import SchemaRegistry
from streams.specialists import Specialist
from streams.state_query import Row
from streams.workflows import Breaker, WorkflowDefinition

STATUSES = tuple(status.value.lower() for status in WorkflowStatus)


# ----------------------------------------------------------------- values from the command line


def read_value(text: str, option: str) -> Any:
    """The JSON document ``text`` holds, or the file ``@path`` holds."""
    where = option
    if text.startswith("@"):
        path = Path(text[1:])
        where = f"{option} {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc


def record_from_json(model: type[Record], value: Any, registry: SchemaRegistry, option: str) -> Record:
    """``value`` as a ``model`` record, checked as `streams publish` checks an event: against the
    record's Avro schema, field by field. The record is written and read back through the registry,
    so what is sent is exactly what the schema makes of the JSON (timestamps, enums, bytes)."""
    schema = model.avro_schema()
    try:
        data = AvroEncoder(registry, avro_schema.full_name(schema), schema)(value)
    except SerializationError as exc:
        raise SerializationError(f"{option} is not a valid {model.__name__}: {exc}") from exc
    return RecordDecoder(registry, model)(data)


def record_type(reference: str) -> type[Record]:
    """The record class ``package.module:ClassName`` names."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"--type {reference!r}: expected MODULE:RecordClass, e.g. streams.events:TaskCompleted"
        )
    if str(Path.cwd()) not in sys.path:  # like load_app: modules in the directory the command runs from
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {module_name!r} from --type {reference!r}: {exc}") from exc
    found = getattr(module, attribute, None)
    if not (isinstance(found, type) and issubclass(found, Record)):
        raise ConfigError(f"--type {reference!r} is not a record class (found {type(found).__name__})")
    return found


# ----------------------------------------------------------------- journals as data


def status_of(journal: WorkflowJournal) -> str:
    return journal.status.value.lower()


def summary(journal: WorkflowJournal) -> dict[str, Any]:
    """One run as `ls` lists it. Steps count every journaled operation (calls, sleeps, signals and the
    journaled now/uuid/random), so the numbers match the positions `show` lists."""
    return {
        "workflow": journal.workflow,
        "workflow_id": journal.workflow_id,
        "status": status_of(journal),
        "steps_done": sum(step.status is not StepStatus.PENDING for step in journal.steps),
        "steps": len(journal.steps),
        "started": journal.started_at.isoformat(),
        "updated": journal.updated_at.isoformat(),
        "error": journal.error,
    }


def counts(journals: Iterable[WorkflowJournal]) -> dict[str, int]:
    """How many runs are in each status, every status named (zero included) in a fixed order."""
    found = Counter(status_of(journal) for journal in journals)
    return {status: found[status] for status in STATUSES}


class PayloadReader:
    """Decodes the records inside a journal for display: as the type the app declares where it is
    known (the workflow's input and output, a specialist's output), otherwise as its writer schema has
    it (a signal's value, whose type only the workflow's code names). A payload that cannot be decoded
    is shown as ``"undecodable: <why>"`` rather than hiding the rest of the journal."""

    def __init__(self, registry: SchemaRegistry, specialists: Mapping[str, Specialist[Any, Any]]) -> None:
        self._registry = registry
        self._specialists = specialists
        self._typed: dict[type[Record], RecordDecoder[Any]] = {}
        self._generic = AvroDecoder(registry)

    def decode(self, data: bytes | None, model: type[Record] | None = None) -> Any:
        if data is None:
            return None
        try:
            if model is not None:
                decoder = self._typed.get(model)
                if decoder is None:
                    decoder = self._typed[model] = RecordDecoder(self._registry, model)
                return decoder(data).model_dump(mode="json")
            _, value = self._generic.decode(data)
        except DeserializationError as exc:
            return f"undecodable: {exc}"
        # The writer's view: timestamps, bytes and decimals as text, so the value prints as JSON.
        return json.loads(json.dumps(value, default=str))

    def step_result(self, step: JournalStep) -> Any:
        specialist = self._specialists.get(step.name) if step.kind is StepKind.CALL else None
        return self.decode(step.result, None if specialist is None else specialist.output)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def detail(
    journal: WorkflowJournal, definition: WorkflowDefinition, reader: PayloadReader, app_ref: str
) -> dict[str, Any]:
    """One run as `show` shows it: its end or progress, its input and output, every step."""
    ended = journal.status is not WorkflowStatus.RUNNING
    return {
        "workflow": journal.workflow,
        "workflow_id": journal.workflow_id,
        "status": status_of(journal),
        "error": journal.error,
        "correlation_id": journal.correlation_id,
        "started": _iso(journal.started_at),
        "updated": _iso(journal.updated_at),
        "duration_s": _seconds(journal.started_at, journal.updated_at) if ended else None,
        "input": reader.decode(journal.input, definition.input),
        "output": reader.decode(journal.output, definition.output),
        "steps": [
            {
                "position": position,
                "kind": step.kind.value.lower(),
                "name": step.name,
                "status": step.status.value.lower(),
                "attempts": step.attempts,
                "tries": step.tries,
                "started": _iso(step.started_at),
                "finished": _iso(step.finished_at),
                "duration_s": _seconds(step.started_at, step.finished_at),
                "deadline": _iso(step.deadline),
                "request_id": step.request_id,
                "result": reader.step_result(step),
                "value": step.value,
                "compensation": reader.decode(step.request),
                "error": step.error,
                "error_class": step.error_class,
                "error_kind": step.error_kind,
                "breaker": None if step.breaker is None else step.breaker.value.lower(),
                "sent_to": step.fallback,
                "handoffs": list(step.handoffs),
                "priority": step.priority,
                "pool": step.pool,
            }
            for position, step in enumerate(journal.steps)
        ],
        "signals_waiting": [
            {"name": s.name, "at": _iso(s.at), "value": reader.decode(s.payload)} for s in journal.signals
        ],
        "trace": f"streams trace {journal.correlation_id} --app {app_ref}",
    }


# ----------------------------------------------------------------- journals as text


def when(iso: str | None) -> str:
    """A moment as `ls` and `show` print it: UTC to the millisecond, no zone suffix."""
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.3g}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def as_json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def runs_table(runs: list[dict[str, Any]]) -> RichTable:
    table = RichTable("id", "workflow", "status", "steps", "started (UTC)", "updated (UTC)", "error")
    for run in runs:
        table.add_row(
            Text(run["workflow_id"]),
            Text(run["workflow"]),
            Text(run["status"], style=_STYLES.get(run["status"], "")),
            f"{run['steps_done']}/{run['steps']}",
            when(run["started"]),
            when(run["updated"]),
            Text(run["error"] or ""),
        )
    return table


def _lane(step: Mapping[str, Any]) -> str:
    """Where a call's request went besides its capability: its pool and a priority not normal."""
    pool = f" @{step['pool']}" if step["pool"] else ""
    return pool + (f" [{step['priority']}]" if step["priority"] else "")


def steps_table(shown: dict[str, Any]) -> RichTable:
    """The steps of one run. A step still pending in a run that has ended is marked abandoned: its
    answer, should it come, changes nothing."""
    table = RichTable(
        "#", "kind", "name", "status", "attempts", "started", "finished", "took", "deadline", "result"
    )
    running = shown["status"] in ("running", "compensating")
    for step in shown["steps"]:
        status = step["status"] if running or step["status"] != "pending" else "pending (abandoned)"
        outcome = step["error"] if step["error"] is not None else step["result"] or step["value"]
        if outcome is None and step["kind"] == "compensate":
            outcome = step["compensation"]
        table.add_row(
            str(step["position"]),
            step["kind"],
            Text(
                step["name"]
                + _BREAKER_NOTES.get(step["breaker"], "").format(**step)
                + _lane(step)
                + _handed_off(step)
            ),
            Text(status, style=_STEP_STYLES.get(step["status"], "")),
            str(step["attempts"] or "-"),
            when(step["started"]),
            when(step["finished"]),
            took(step["duration_s"]),
            when(step["deadline"]),
            Text("" if outcome is None else as_json_text(outcome)),
        )
    return table


def _handed_off(step: Mapping[str, Any]) -> str:
    """Where a step's request went on from the capability asked: `` (handed off: billing -> refunds)``."""
    chain = step["handoffs"][1:]
    return f" (handed off: {' -> '.join(chain)})" if chain else ""


_BREAKER_NOTES = {
    "fallback": " -> {sent_to} (breaker open)",
    "trial": " (breaker trial)",
    "refused": " (breaker open)",
}


# ----------------------------------------------------------------- circuit breakers


def breaker_rows(
    workflow: str, rows: Iterable[Row[BreakerState]], policies: Mapping[str, Breaker], now: datetime
) -> list[dict[str, Any]]:
    """The breakers one workflow's engine keeps, one per partition and capability, as of ``now``:
    failures count those within the declared window, and an open breaker whose cool-down is over
    says its next call will be a trial."""
    shown = []
    for row in rows:
        state, policy = row.value, policies.get(row.value.capability)
        window = policy.window if policy is not None else None
        recent = [at for at in state.failures if window is None or at > now - window]
        shown.append(
            {
                "workflow": workflow,
                "partition": row.partition,
                "capability": state.capability,
                "status": state.status.value.lower(),
                "trial_due": state.status is BreakerStatus.OPEN
                and (state.retry_at is None or state.retry_at <= now),
                "failures": len(recent),
                "threshold": None if policy is None else policy.failures,
                "within_s": _total(window),
                "cool_down_s": _total(None if policy is None else policy.pause),
                "fallback": None if policy is None else policy.fallback,
                "opened": _iso(state.opened_at),
                "next_trial": _iso(state.retry_at),
                "trial_request_id": state.trial_request_id,
                "opens": state.opens,
                "last_error": state.last_error,
                "updated": _iso(state.updated_at),
            }
        )
    return shown


def _total(span: timedelta | None) -> float | None:
    return None if span is None else span.total_seconds()


def breaker_status(row: Mapping[str, Any]) -> str:
    if row["status"] == "open":
        return "open (trial due)" if row["trial_due"] else "open"
    return "half-open (trial out)" if row["status"] == "half_open" else str(row["status"])


def breakers_table(rows: list[dict[str, Any]]) -> RichTable:
    table = RichTable(
        "workflow",
        "partition",
        "capability",
        "state",
        "failures",
        "opened (UTC)",
        "next trial (UTC)",
        "opens",
        "fallback",
        "last error",
    )
    for row in rows:
        counted = str(row["failures"])
        if row["threshold"] is not None:
            counted += f"/{row['threshold']} in {took(row['within_s'])}"
        table.add_row(
            Text(row["workflow"]),
            str(row["partition"]),
            Text(row["capability"]),
            Text(breaker_status(row), style=_BREAKER_STYLES.get(row["status"], "")),
            counted,
            when(row["opened"]),
            when(row["next_trial"]),
            str(row["opens"]),
            Text(row["fallback"] or "-"),
            Text(row["last_error"] or ""),
        )
    return table


def breaker_policy(capability: str, policy: Breaker) -> str:
    """One declared breaker in words."""
    to = f"calls go to {policy.fallback}" if policy.fallback else "calls fail with CircuitOpen"
    return (
        f"{capability}: opens after {policy.failures} failure(s) within "
        f"{took(policy.window.total_seconds())}; while open {to}; a trial after "
        f"{took(policy.pause.total_seconds())}"
    )


_BREAKER_STYLES = {"closed": "green", "open": "red", "half_open": "yellow"}
_STYLES = {
    "running": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "compensating": "yellow",
    "failed_compensation": "bold red",
}
_STEP_STYLES = {
    "pending": "yellow",
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "retrying": "yellow",
}
