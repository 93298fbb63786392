"""The workflow engine: an exactly-once agent on a workflow's event topic, keyed by workflow id.

On each event it updates the workflow's journal (a table), runs the code against it, sends the
requests for steps asked for anew, and reports the end; the journal, the requests, the report and the
input offset commit in one transaction. A crash at any point resumes from the last committed journal:
no step is lost, and none is requested twice (a request's id is derived from the workflow id and the
step's position, so even a repeat would be recognised).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.context import Context
from streams.errors import ConfigError
from streams.events import WorkflowEvent, WorkflowEventKind, WorkflowJournal, WorkflowStatus
from streams.serde.record import Record
from streams.specialists import Specialist, request_headers
from streams.tables import Table
from streams.topics import Topic
from streams.workflows.journal import apply, cancelled_error, finished
from streams.workflows.replay import Outcome, WorkflowFunction, replay
from streams.workflows.timers import deadlines_of

log = logging.getLogger("streams.workflows")


@dataclass(frozen=True)
class WorkflowDefinition:
    """A workflow as declared: its name, record types, code and event topic."""

    name: str
    input: type[Record]
    output: type[Record]
    function: WorkflowFunction
    events: Topic[WorkflowEvent]


JOURNAL = Table(name="journal", value=WorkflowJournal)


class WorkflowEngine:
    """The handler of a workflow's engine agent."""

    def __init__(
        self, definition: WorkflowDefinition, specialists: Mapping[str, Specialist[Any, Any]]
    ) -> None:
        self._definition = definition
        self._specialists = specialists  # the app's, read when a step is asked for: declared in any order
        self.__name__ = definition.name

    async def __call__(self, event: WorkflowEvent, ctx: Context) -> None:
        journals = ctx.table(JOURNAL)
        before = journals.get(event.workflow_id)
        journal = apply(before, event, ctx.correlation_id)
        if journal is None:
            return  # a repeat, or news for a workflow that has ended
        if journal.status is WorkflowStatus.RUNNING:
            outcome = replay(
                self._definition.function,
                journal,
                self._definition.input,
                now_ms=ctx.timestamp_ms,
                payloads=ctx.payloads,
                output_of=self._output_of,
            )
            journal = await self._act(outcome, ctx)
        elif journal.status is WorkflowStatus.CANCELLED:
            # apply() ends only a running workflow this way, so the end is reported once; waiters
            # wake, and the steps it still waits for are ignored when their answers come.
            name = self._definition.name
            log.info("workflow %s (%s) cancelled: %s", name, event.workflow_id, journal.error)
            now = datetime.fromtimestamp(ctx.timestamp_ms / 1000, UTC)
            await self._report(
                ctx, journal, WorkflowEventKind.FAILED, now, error=cancelled_error(journal.error)
            )
        # New deadlines reach the timer index now; were this call to fail, they would fire for steps
        # the journal does not hold, which the journal ignores.
        deadlines_of(journals.cache()).add(journal, first_step=len(before.steps) if before else 0)
        journals.set(event.workflow_id, journal)

    async def _act(self, outcome: Outcome, ctx: Context) -> WorkflowJournal:
        journal = outcome.journal
        definition = self._definition
        now = datetime.fromtimestamp(ctx.timestamp_ms / 1000, UTC)
        if (
            outcome.error is None
            and outcome.output is not None
            and not isinstance(outcome.output, definition.output)
        ):
            returned = type(outcome.output).__name__
            outcome.error = TypeError(
                f"workflow {definition.name} returned {returned}, not {definition.output.__name__}"
            )
        if outcome.error is not None:
            error = f"{type(outcome.error).__name__}: {outcome.error}"
            log.warning("workflow %s (%s) failed: %s", definition.name, journal.workflow_id, error)
            failure = (error, f"{type(outcome.error).__module__}.{type(outcome.error).__qualname__}")
            await self._report(ctx, journal, WorkflowEventKind.FAILED, now, error=failure)
            return finished(journal, WorkflowStatus.FAILED, now, error=error)
        for request in outcome.requests:
            specialist = self._specialist(request.capability)
            await ctx.send(
                specialist.requests,
                request.value,
                key=journal.workflow_id,
                message_id=request.request_id,
                headers=request_headers(definition.events, journal.workflow_id),
            )
        if outcome.output is None:
            return journal
        payload = ctx.payloads.encode(outcome.output)
        await self._report(ctx, journal, WorkflowEventKind.COMPLETED, now, payload=payload)
        return finished(journal, WorkflowStatus.COMPLETED, now, output=payload)

    async def _report(
        self,
        ctx: Context,
        journal: WorkflowJournal,
        kind: WorkflowEventKind,
        now: datetime,
        *,
        payload: bytes | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """Tell whoever follows the event topic how the workflow ended; ``error`` is (text, class)."""
        await ctx.send(
            self._definition.events,
            WorkflowEvent(
                kind=kind,
                workflow_id=journal.workflow_id,
                name=self._definition.name,
                payload=payload,
                error=None if error is None else error[0],
                error_class=None if error is None else error[1],
                sender=ctx.agent,
                at=now,
            ),
            key=journal.workflow_id,
        )

    def _specialist(self, capability: str) -> Specialist[Any, Any]:
        specialist = self._specialists.get(capability)
        if specialist is None:
            known = ", ".join(self._specialists) or "none"
            raise ConfigError(
                f"workflow {self._definition.name}: no specialist for {capability}; capabilities: {known}"
            )
        return specialist

    def _output_of(self, capability: str) -> type[Record]:
        return self._specialist(capability).output


__all__ = ["JOURNAL", "WorkflowDefinition", "WorkflowEngine"]
