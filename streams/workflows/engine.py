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
from datetime import UTC, datetime, timedelta
from typing import Any

from streams import headers as hdr
from streams.context import Context
from streams.errors import ConfigError
from streams.events import (
    BreakerNews,
    ParentStep,
    StepKind,
    WorkflowEvent,
    WorkflowEventKind,
    WorkflowJournal,
    WorkflowStatus,
)
from streams.priorities import NORMAL
from streams.routing import Routing
from streams.serde.record import Record
from streams.specialists import Specialist, request_headers
from streams.tables import Table
from streams.timestamps import epoch_millis
from streams.topics import Topic
from streams.workflows.breaker import BREAKERS, Breaker, Breakers, BreakerStats, News
from streams.workflows.cache import CACHE, CacheStats, store_answers
from streams.workflows.journal import CANCELLED_CLASS, NO_REASON, apply, cancelled_error, finished
from streams.workflows.replay import Outcome, Request, WorkflowFunction, replay
from streams.workflows.saga import advance, has_compensations, start_unwinding
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
    deadline: timedelta | None = None  # from the start: no step of a run waits past it


JOURNAL = Table(name="journal", value=WorkflowJournal)


class WorkflowEngine:
    """The handler of a workflow's engine agent."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        specialists: Mapping[str, Specialist[Any, Any]],
        workflows: Mapping[str, WorkflowDefinition],
        breakers: Mapping[str, Breaker] | None = None,
        routing: Routing | None = None,
    ) -> None:
        self._definition = definition
        # The app's, read when a step is asked for: declared in any order.
        self._specialists = specialists
        self._workflows = workflows
        self._breakers: Mapping[str, Breaker] = breakers if breakers is not None else {}
        self._routing = routing or Routing()
        self.__name__ = definition.name
        self.cache_stats = CacheStats()
        self.breaker_stats = BreakerStats()

    async def __call__(self, event: WorkflowEvent, ctx: Context) -> None:
        # An event's own deadline header (an answer carries its request's) is no deadline of the
        # requests sent now: each of those carries its step's.
        inherited, ctx.deadline_ms = ctx.deadline_ms, None
        now = datetime.fromtimestamp(ctx.timestamp_ms / 1000, UTC)
        breakers = Breakers(
            self._breakers,
            self._specialists,
            lambda: ctx.table(BREAKERS),
            ctx.partition,
            self.breaker_stats,
        )
        if event.kind is WorkflowEventKind.BREAKER:
            if event.breaker is not None:
                breakers.hear(event.breaker, event.error, now, ctx.message_id)
            return  # news for this partition's breakers, no workflow's
        journals = ctx.table(JOURNAL)
        before = journals.get(event.workflow_id)
        journal = apply(before, event, ctx.correlation_id, _parent_of(event, ctx))
        if journal is None:
            return  # a repeat, or news for a workflow that has ended
        if event.kind is WorkflowEventKind.STEP_SUCCEEDED and any(s.cache_key for s in journal.steps):
            store_answers(before, journal, ctx.table(CACHE))
        if before is None:
            journal = self._with_deadline(journal, inherited)
        if before is not None and self._breakers:
            # Answers and timeouts first: a failure that opens a breaker counts for what the code
            # asks for on this very replay.
            breakers.observe(before, journal, now)
        if journal.status is WorkflowStatus.RUNNING:
            outcome = replay(
                self._definition.function,
                journal,
                self._definition.input,
                now_ms=ctx.timestamp_ms,
                payloads=ctx.payloads,
                output_of=self._output_of,
                cached=lambda key: ctx.table(CACHE).get(key),
                cache_stats=self.cache_stats,
                breakers=breakers,
                route=self._route,
            )
            journal = await self._act(outcome, ctx)
        elif journal.status is WorkflowStatus.CANCELLED:
            # apply() ends only a running workflow this way, so the end is reported once; waiters
            # wake, and the steps it still waits for are ignored when their answers come.
            name = self._definition.name
            log.info("workflow %s (%s) cancelled: %s", name, event.workflow_id, journal.error)
            now = datetime.fromtimestamp(ctx.timestamp_ms / 1000, UTC)
            if has_compensations(journal):
                journal = start_unwinding(journal, journal.error or NO_REASON, CANCELLED_CLASS, now)
            else:
                await self._report(
                    ctx, journal, WorkflowEventKind.FAILED, now, error=cancelled_error(journal.error)
                )
        if journal.status is WorkflowStatus.COMPENSATING:
            journal = await self._unwind(journal, ctx)
        for news in breakers.news:
            await self._tell(ctx, news, now)
        # New deadlines reach the timer index now; were this call to fail, they would fire for steps
        # the journal does not hold, which the journal ignores.
        deadlines_of(journals.cache()).add(journal, before)
        journals.set(event.workflow_id, journal)

    async def _tell(self, ctx: Context, news: News, now: datetime) -> None:
        """Send a breaker's news to every other partition of every workflow of the app, so that each
        engine partition's copy of the breaker counts every call (one event per partition)."""
        told = WorkflowEvent(
            kind=WorkflowEventKind.BREAKER,
            workflow_id="",
            name=news.capability,
            request_id=news.request_id,
            error=news.error,
            sender=ctx.agent,
            at=now,
            breaker=BreakerNews(
                capability=news.capability,
                change=news.change,
                request_id=news.request_id,
                workflow=self._definition.name,
                partition=ctx.partition,
            ),
        )
        key = f"breaker:{news.capability}"
        for workflow in self._workflows.values():
            for partition in range(workflow.events.partitions):
                if workflow.name != self._definition.name or partition != ctx.partition:
                    await ctx.send(workflow.events, told, key=key, partition=partition)

    def _with_deadline(self, journal: WorkflowJournal, inherited_ms: int | None) -> WorkflowJournal:
        """A new run's deadline: the declared one from its start, or the one it was started under
        (a parent's, a client's), whichever comes first."""
        candidates = []
        if self._definition.deadline is not None:
            candidates.append(journal.started_at + self._definition.deadline)
        if inherited_ms is not None:
            candidates.append(datetime.fromtimestamp(inherited_ms / 1000, UTC))
        return journal.model_copy(update={"deadline": min(candidates)}) if candidates else journal

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
            if has_compensations(journal):
                return start_unwinding(journal, *failure, now)  # the end is reported once unwound
            await self._report(ctx, journal, WorkflowEventKind.FAILED, now, error=failure)
            return finished(journal, WorkflowStatus.FAILED, now, error=error, error_class=failure[1])
        for request in outcome.requests:
            await self._send(ctx, journal, request, now)
        if outcome.output is None:
            return journal
        payload = ctx.payloads.encode(outcome.output)
        await self._report(ctx, journal, WorkflowEventKind.COMPLETED, now, payload=payload)
        return finished(journal, WorkflowStatus.COMPLETED, now, output=payload)

    async def _unwind(self, journal: WorkflowJournal, ctx: Context) -> WorkflowJournal:
        """Move an unwinding saga on: its next compensation, or its end once nothing is left."""
        now = datetime.fromtimestamp(ctx.timestamp_ms / 1000, UTC)
        unwound = advance(journal, now, CANCELLED_CLASS)
        journal = unwound.journal
        for compensation in unwound.requests:
            specialist = self._specialist(compensation.capability)
            await ctx.send(
                specialist.requests_for(NORMAL, self._route(compensation.capability)),
                ctx.payloads.decode(compensation.payload, specialist.requests.value),
                key=journal.workflow_id,
                message_id=compensation.request_id,
                headers=request_headers(self._definition.events, journal.workflow_id),
            )
        if not unwound.ended:
            return journal
        name, workflow_id = self._definition.name, journal.workflow_id
        if journal.status is WorkflowStatus.CANCELLED:
            error = cancelled_error(journal.error)
        else:
            error = (journal.error or "", journal.error_class or "")
        log.warning("workflow %s (%s) unwound, %s: %s", name, workflow_id, journal.status.value, error[0])
        await self._report(ctx, journal, WorkflowEventKind.FAILED, now, error=error)
        return journal

    async def _send(self, ctx: Context, journal: WorkflowJournal, request: Request, now: datetime) -> None:
        """A new step's request: to a specialist, or the start of a child workflow; either way the
        answer comes back to this workflow's event topic, citing the request's id."""
        reply_to = request_headers(self._definition.events, journal.workflow_id)
        if request.deadline is not None:
            reply_to.append(hdr.deadline_header(epoch_millis(request.deadline)))
        if request.kind is StepKind.CHILD:
            child = self._workflow(request.name)
            child_id = request.child_id or request.request_id
            start = WorkflowEvent(
                kind=WorkflowEventKind.STARTED,
                workflow_id=child_id,
                name=child.name,
                payload=ctx.payloads.encode(request.value),
                sender=ctx.agent,
                at=now,
            )
            await ctx.send(child.events, start, key=child_id, message_id=request.request_id, headers=reply_to)
            return
        specialist = self._specialist(request.name)
        await ctx.send(
            specialist.requests_for(request.priority, request.pool),
            request.value,
            key=journal.workflow_id,
            message_id=request.request_id,
            headers=reply_to,
        )

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
        """Tell whoever follows the event topic how the workflow ended, and a parent its step's outcome;
        ``error`` is (text, class)."""
        ending = WorkflowEvent(
            kind=kind,
            workflow_id=journal.workflow_id,
            name=self._definition.name,
            payload=payload,
            error=None if error is None else error[0],
            error_class=None if error is None else error[1],
            sender=ctx.agent,
            at=now,
        )
        await ctx.send(self._definition.events, ending, key=journal.workflow_id)
        parent = journal.parent
        if parent is not None:
            answer = ending.model_copy(
                update={
                    "kind": WorkflowEventKind.STEP_SUCCEEDED
                    if kind is WorkflowEventKind.COMPLETED
                    else WorkflowEventKind.STEP_FAILED,
                    "workflow_id": parent.workflow_id,
                    "request_id": parent.request_id,
                }
            )
            await ctx.send(Topic(parent.reply_to, value=WorkflowEvent), answer, key=parent.workflow_id)

    def _route(self, capability: str) -> str | None:
        """The pool of ``capability`` with the least load now (see :mod:`streams.routing`)."""
        return self._routing.choose(self._specialist(capability).pools)

    def _specialist(self, capability: str) -> Specialist[Any, Any]:
        specialist = self._specialists.get(capability)
        if specialist is None:
            known = ", ".join(self._specialists) or "none"
            raise ConfigError(
                f"workflow {self._definition.name}: no specialist for {capability}; capabilities: {known}"
            )
        return specialist

    def _workflow(self, name: str) -> WorkflowDefinition:
        workflow = self._workflows.get(name)
        if workflow is None:
            known = ", ".join(self._workflows) or "none"
            raise ConfigError(
                f"workflow {self._definition.name}: no workflow {name} to start; workflows: {known}"
            )
        return workflow

    def _output_of(self, kind: StepKind, name: str) -> type[Record]:
        if kind is StepKind.CHILD:
            return self._workflow(name).output
        return self._specialist(name).output


def _parent_of(event: WorkflowEvent, ctx: Context) -> ParentStep | None:
    """A start sent by another workflow names the step to report back to (in its headers)."""
    reply_to = ctx.headers.get(hdr.REPLY_TO)
    if event.kind is not WorkflowEventKind.STARTED or reply_to is None:
        return None
    return ParentStep(
        reply_to=reply_to, workflow_id=ctx.headers.get(hdr.REPLY_KEY, ""), request_id=ctx.message_id
    )


__all__ = ["JOURNAL", "WorkflowDefinition", "WorkflowEngine"]
