"""What clients send to a workflow and read back from it: the start, signal and cancel events, and the
result a final event carries. Shared by :class:`streams.Client` and the in-memory twin, so both speak
exactly alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.errors import CompensationFailed, WorkflowCancelled, WorkflowFailed
from streams.events import WorkflowEvent, WorkflowEventKind
from streams.serde.payloads import Payloads
from streams.serde.record import Record
from streams.workflows.engine import WorkflowDefinition
from streams.workflows.journal import CANCELLED_CLASS, cancel_reason
from streams.workflows.saga import COMPENSATION_FAILED_CLASS

ENDINGS = (WorkflowEventKind.COMPLETED, WorkflowEventKind.FAILED)


def start_event(
    definition: WorkflowDefinition,
    value: Record,
    workflow_id: str,
    payloads: Payloads,
    sender: str,
    now_ms: int,
) -> WorkflowEvent:
    if not isinstance(value, definition.input):
        raise TypeError(
            f"workflow {definition.name} takes {definition.input.__name__}, not {type(value).__name__}"
        )
    return WorkflowEvent(
        kind=WorkflowEventKind.STARTED,
        workflow_id=workflow_id,
        name=definition.name,
        payload=payloads.encode(value),
        sender=sender,
        at=datetime.fromtimestamp(now_ms / 1000, UTC),
    )


def signal_event(
    definition: WorkflowDefinition,
    workflow_id: str,
    name: str,
    value: Record,
    payloads: Payloads,
    sender: str,
    now_ms: int,
) -> WorkflowEvent:
    return WorkflowEvent(
        kind=WorkflowEventKind.SIGNALLED,
        workflow_id=workflow_id,
        name=name,
        payload=payloads.encode(value),
        sender=sender,
        at=datetime.fromtimestamp(now_ms / 1000, UTC),
    )


def cancel_event(
    definition: WorkflowDefinition, workflow_id: str, reason: str | None, sender: str, now_ms: int
) -> WorkflowEvent:
    """The request to cancel a workflow; its ``error`` carries the reason."""
    return WorkflowEvent(
        kind=WorkflowEventKind.CANCELLED,
        workflow_id=workflow_id,
        name=definition.name,
        error=reason or None,
        sender=sender,
        at=datetime.fromtimestamp(now_ms / 1000, UTC),
    )


def result_of(event: WorkflowEvent, definition: WorkflowDefinition, payloads: Payloads) -> Any:
    """The output a COMPLETED event carries; :class:`WorkflowFailed` for a FAILED one, and its
    subclass :class:`WorkflowCancelled` when the FAILED event reports a cancellation."""
    if event.kind is WorkflowEventKind.COMPLETED and event.payload is not None:
        return payloads.decode(event.payload, definition.output)
    if event.error_class == COMPENSATION_FAILED_CLASS:
        raise CompensationFailed(
            f"workflow {definition.name} ({event.workflow_id}) failed: {event.error}",
            error_class=event.error_class,
        )
    if event.error_class == CANCELLED_CLASS:
        raise WorkflowCancelled(
            f"workflow {definition.name} ({event.workflow_id}) {event.error}",
            reason=cancel_reason(event.error),
        )
    raise WorkflowFailed(
        f"workflow {definition.name} ({event.workflow_id}) failed: {event.error}",
        error_class=event.error_class,
    )
