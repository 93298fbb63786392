"""A workflow's journal, and what each event does to it. Pure: no Kafka, no clock of its own.

The journal is the workflow's only state: its input, and every durable operation its code asked for,
in order, with what came back. Events change it in one way each; an event that changes nothing (a
second start, an answer to a step already answered) is a repeat and is ignored, which is what makes
redelivered and duplicated events harmless.
"""

from __future__ import annotations

from datetime import datetime

from streams.errors import CallTimeout, ErrorKind, WorkflowCancelled
from streams.events import (
    BufferedSignal,
    JournalStep,
    ParentStep,
    StepKind,
    StepStatus,
    WorkflowEvent,
    WorkflowEventKind,
    WorkflowJournal,
    WorkflowStatus,
)
from streams.timestamps import epoch_millis
from streams.workflows.retries import retry_due

NO_REASON = "no reason given"

CANCELLED_CLASS = f"{WorkflowCancelled.__module__}.{WorkflowCancelled.__qualname__}"
"""The ``error_class`` of the FAILED event by which the engine reports a cancellation. The request is a
CANCELLED event from a client; the report is a FAILED one from the engine, so whoever waits for an end
(COMPLETED or FAILED) wakes, old clients included, and both are told apart by kind."""

_CANCELLED_PREFIX = "cancelled: "

_TIMEOUT_CLASS = f"{CallTimeout.__module__}.{CallTimeout.__qualname__}"

_STEP_ANSWERS = {
    WorkflowEventKind.STEP_SUCCEEDED: StepStatus.SUCCEEDED,
    WorkflowEventKind.STEP_FAILED: StepStatus.FAILED,
}


def apply(
    journal: WorkflowJournal | None,
    event: WorkflowEvent,
    correlation_id: str,
    parent: ParentStep | None = None,
) -> WorkflowJournal | None:
    """The journal after ``event``, or None when the event changes nothing. ``parent``: the step of
    another workflow that started this one (a start only)."""
    if event.kind is WorkflowEventKind.STARTED:
        if journal is not None or event.payload is None:
            return None  # started already: a repeated start is the same workflow
        return WorkflowJournal(
            workflow=event.name,
            workflow_id=event.workflow_id,
            status=WorkflowStatus.RUNNING,
            input=event.payload,
            correlation_id=correlation_id,
            parent=parent,
            started_at=event.at,
            updated_at=event.at,
            events=1,
            steps=[],
        )
    if journal is None or journal.status not in (WorkflowStatus.RUNNING, WorkflowStatus.COMPENSATING):
        return None
    answered = _STEP_ANSWERS.get(event.kind)
    if answered is not None:
        return _answer(journal, event, answered)
    if event.kind is WorkflowEventKind.TIMER_FIRED:
        return _fire(journal, event)
    if journal.status is WorkflowStatus.COMPENSATING:
        return None  # unwinding: only its compensations' answers and timers matter now
    if event.kind is WorkflowEventKind.SIGNALLED:
        return _signal(journal, event)
    if event.kind is WorkflowEventKind.CANCELLED:
        # The request's ``error`` is the reason. Steps still pending stay so: the journal shows what
        # the workflow was waiting for, and their late answers change nothing (it is not running).
        return journal.model_copy(
            update={
                "status": WorkflowStatus.CANCELLED,
                "error": event.error or NO_REASON,
                "updated_at": event.at,
            }
        )
    return None  # COMPLETED / FAILED: the engine's own report of an end it has journaled already


def _answer(journal: WorkflowJournal, event: WorkflowEvent, status: StepStatus) -> WorkflowJournal | None:
    for index, step in enumerate(journal.steps):
        if step.request_id == event.request_id:
            if step.status is not StepStatus.PENDING:
                return None  # answered already (a redelivered reply)
            steps = list(journal.steps)
            answer = {
                "result": event.payload,
                "error": event.error,
                "error_class": event.error_class,
                "error_kind": event.error_kind,
                "attempts": event.attempts,
                "finished_at": event.at,
                "handoffs": event.handoffs,  # who answered, when specialists handed the request off
            }
            kind = _kind(event.error_kind)
            due = None if status is StepStatus.SUCCEEDED else retry_due(journal, step, kind, event.at)
            if due is not None:
                # Not an outcome the code sees: the step waits for its backoff, then is asked again.
                steps[index] = step.model_copy(
                    update={**answer, "status": StepStatus.RETRYING, "deadline": due}
                )
            else:
                steps[index] = step.model_copy(
                    update={**answer, "status": status, "answered_as": journal.events + 1}
                )
            return _changed(journal, event, steps=steps)
    return None  # not a step of this workflow


def _fire(journal: WorkflowJournal, event: WorkflowEvent) -> WorkflowJournal | None:
    """A deadline came: a sleep is over; a call or signal still waiting has timed out."""
    index = event.step
    if index is None or not 0 <= index < len(journal.steps):
        return None
    step = journal.steps[index]
    # Compared in whole milliseconds, as both went through Avro: a timer fires at its due ms.
    if step.deadline is None or epoch_millis(event.at) < epoch_millis(step.deadline):
        return None  # answered in time, fired already, or a timer of an earlier try
    steps = list(journal.steps)
    if step.status is StepStatus.RETRYING:
        # The backoff is over: the code asks again on this replay (no request id yet says so).
        steps[index] = step.model_copy(
            update={"status": StepStatus.PENDING, "request_id": None, "deadline": None}
        )
        return _changed(journal, event, steps=steps)
    if step.status is not StepStatus.PENDING:
        return None
    if step.kind is not StepKind.SLEEP and step.kind is not StepKind.SIGNAL:
        due = retry_due(journal, step, ErrorKind.TRANSIENT, event.at)
        if due is not None:
            steps[index] = step.model_copy(
                update={
                    "status": StepStatus.RETRYING,
                    "deadline": due,
                    "error": "no answer in time",
                    "error_class": _TIMEOUT_CLASS,
                    "finished_at": event.at,
                }
            )
            return _changed(journal, event, steps=steps)
    status = StepStatus.SUCCEEDED if step.kind is StepKind.SLEEP else StepStatus.TIMED_OUT
    steps[index] = step.model_copy(
        update={"status": status, "finished_at": event.at, "answered_as": journal.events + 1}
    )
    return _changed(journal, event, steps=steps)


def _signal(journal: WorkflowJournal, event: WorkflowEvent) -> WorkflowJournal | None:
    """A signal answers the oldest step waiting for it, or waits in the journal for the code to ask."""
    if event.payload is None:
        return None
    for index, step in enumerate(journal.steps):
        if step.kind is StepKind.SIGNAL and step.name == event.name and step.status is StepStatus.PENDING:
            steps = list(journal.steps)
            steps[index] = step.model_copy(
                update={
                    "status": StepStatus.SUCCEEDED,
                    "result": event.payload,
                    "finished_at": event.at,
                    "answered_as": journal.events + 1,
                }
            )
            return _changed(journal, event, steps=steps)
    buffered = BufferedSignal(name=event.name, payload=event.payload, at=event.at)
    return _changed(journal, event, signals=[*journal.signals, buffered])


def _changed(journal: WorkflowJournal, event: WorkflowEvent, **changes: object) -> WorkflowJournal:
    """``journal`` with ``changes`` made by ``event``, counted: the count orders answers and deadlines."""
    return journal.model_copy(update={**changes, "updated_at": event.at, "events": journal.events + 1})


def finished(
    journal: WorkflowJournal, status: WorkflowStatus, at: datetime, **changes: object
) -> WorkflowJournal:
    return journal.model_copy(update={"status": status, "updated_at": at, **changes})


def new_step(step: JournalStep, journal: WorkflowJournal) -> WorkflowJournal:
    return journal.model_copy(update={"steps": [*journal.steps, step]})


def cancelled_error(reason: str | None) -> tuple[str, str]:
    """The error text and class of the engine's report that a workflow was cancelled for ``reason``."""
    return f"{_CANCELLED_PREFIX}{reason or NO_REASON}", CANCELLED_CLASS


def cancel_reason(error: str | None) -> str:
    """The reason in a cancellation report's error text (the inverse of :func:`cancelled_error`)."""
    text = error or ""
    return text[len(_CANCELLED_PREFIX) :] if text.startswith(_CANCELLED_PREFIX) else text or NO_REASON


def _kind(value: str | None) -> ErrorKind | None:
    try:
        return None if value is None else ErrorKind(value)
    except ValueError:
        return None  # a kind this version does not know: no opinion
