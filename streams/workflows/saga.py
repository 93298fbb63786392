"""Sagas: undoing what a workflow did when it fails or is cancelled. Pure: no Kafka, no clock.

``wf.compensate(capability, value)`` journals a compensation (its record included) once the step it
undoes has succeeded. If the workflow then fails or is cancelled, it does not end yet: it becomes
COMPENSATING, and the engine runs the compensations one at a time, newest first, each a request
journaled like a call. The code is not run again meanwhile; the journal alone says what is left, so
a crash at any point resumes exactly where the unwinding was. A compensation that fails is retried
(its policy is journaled with it); one that still fails ends the run FAILED_COMPENSATION, with the
reason, for a human to finish: later compensations are not guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from streams import headers as hdr
from streams.errors import CompensationFailed
from streams.events import JournalStep, StepKind, StepStatus, WorkflowJournal, WorkflowStatus
from streams.retry import Retry
from streams.workflows.retries import retry_request_id

COMPENSATION_RETRY = Retry(attempts=5, backoff=1.0, max_backoff=60.0)
"""A compensation's retries unless ``wf.compensate(..., retry=...)`` says otherwise: undoing matters
more than failing fast."""

COMPENSATION_FAILED_CLASS = f"{CompensationFailed.__module__}.{CompensationFailed.__qualname__}"


@dataclass(frozen=True)
class Compensation:
    """A compensation to send now: ``payload`` is its record in the wire format."""

    capability: str
    payload: bytes
    request_id: str


@dataclass
class Unwound:
    journal: WorkflowJournal
    requests: list[Compensation] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.journal.status is not WorkflowStatus.COMPENSATING


def has_compensations(journal: WorkflowJournal) -> bool:
    return any(s.kind is StepKind.COMPENSATE and s.status is StepStatus.REGISTERED for s in journal.steps)


def start_unwinding(journal: WorkflowJournal, error: str, error_class: str, at: datetime) -> WorkflowJournal:
    """``journal`` turned COMPENSATING by ``error`` (kept to end the run with once it is unwound)."""
    return journal.model_copy(
        update={
            "status": WorkflowStatus.COMPENSATING,
            "error": error,
            "error_class": error_class,
            "updated_at": at,
        }
    )


def advance(journal: WorkflowJournal, at: datetime, cancelled_class: str) -> Unwound:
    """The next move of an unwinding saga: request the newest compensation not yet run, wait for the
    one running, or end the run (FAILED or CANCELLED as it was going to, or FAILED_COMPENSATION)."""
    steps = list(journal.steps)
    for index in reversed(range(len(steps))):
        step = steps[index]
        if step.kind is not StepKind.COMPENSATE or step.status is StepStatus.SUCCEEDED:
            continue
        if step.status is StepStatus.PENDING and step.request_id is not None:
            return Unwound(journal)  # running: its answer moves the saga on
        if step.status is StepStatus.RETRYING:
            return Unwound(journal)  # its backoff timer moves it on
        if step.status is StepStatus.REGISTERED or step.status is StepStatus.PENDING:
            tries = step.tries + 1
            request_id = (
                hdr.derived_id(journal.workflow_id, f"{journal.workflow}#compensate", index)
                if tries == 1
                else retry_request_id(journal.workflow_id, journal.workflow, index, tries)
            )
            steps[index] = step.model_copy(
                update={
                    "status": StepStatus.PENDING,
                    "request_id": request_id,
                    "tries": tries,
                    "started_at": at if tries == 1 else step.started_at,
                    "finished_at": None,
                }
            )
            assert step.request is not None
            request = Compensation(step.name, step.request, request_id)
            return Unwound(journal.model_copy(update={"steps": steps, "updated_at": at}), [request])
        return Unwound(_escalated(journal, index, step, at))  # FAILED or TIMED_OUT, retries spent
    ending = WorkflowStatus.CANCELLED if journal.error_class == cancelled_class else WorkflowStatus.FAILED
    return Unwound(journal.model_copy(update={"status": ending, "updated_at": at}))


def _escalated(journal: WorkflowJournal, index: int, step: JournalStep, at: datetime) -> WorkflowJournal:
    error = (
        f"{journal.error}; then compensation {step.name} (step {index}) failed after "
        f"{max(step.tries, 1)} request(s): {step.error or step.status.value.lower()}"
    )
    return journal.model_copy(
        update={
            "status": WorkflowStatus.FAILED_COMPENSATION,
            "error": error,
            "error_class": COMPENSATION_FAILED_CLASS,
            "updated_at": at,
        }
    )
