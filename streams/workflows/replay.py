"""Running a workflow's code against its journal: completed steps return what they returned before,
the first step without an answer suspends the run, and steps the code asks for anew become requests.

The code runs from the top on every event. Each durable operation takes the next position in the
journal; if the journal already holds a different operation there, the code has changed under a
running workflow (or is not deterministic), and the workflow stops with that error rather than mix
two histories.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from streams import headers as hdr
from streams.errors import CallTimeout, CircuitOpen, StreamsError, call_failed
from streams.events import BreakerDecision, JournalStep, StepKind, StepStatus, WorkflowJournal
from streams.priorities import NORMAL, Priority, checked
from streams.retry import Retry
from streams.serde.payloads import Payloads
from streams.serde.record import Record
from streams.workflows.breaker import CIRCUIT_OPEN_CLASS, Breakers, decided
from streams.workflows.cache import CacheLookup, CacheStats, cache_key, fresh
from streams.workflows.retries import retry_request_id, step_retry
from streams.workflows.saga import COMPENSATION_RETRY
from streams.workflows.steps import (
    SUSPEND,
    Gathered,
    NonDeterminismError,
    Outcome,
    OutputOf,
    Request,
    Step,
)

T = TypeVar("T")
R = TypeVar("R", bound=Record)

Route = Callable[[str], str | None]
"""The pool of a capability that a new request goes to (None: its unnamed pool)."""

__all__ = [
    "Gathered",
    "NonDeterminismError",
    "Outcome",
    "OutputOf",
    "Request",
    "Step",
    "Workflow",
    "WorkflowFunction",
    "replay",
]


class Workflow:
    """The handle a workflow function gets: durable calls and journaled values."""

    def __init__(
        self,
        journal: WorkflowJournal,
        now_ms: int,
        payloads: Payloads,
        output_of: OutputOf,
        cached: CacheLookup | None = None,
        breakers: Breakers | None = None,
        route: Route | None = None,
    ) -> None:
        self.id = journal.workflow_id
        self.name = journal.workflow
        self._journal = journal
        self._steps = list(journal.steps)
        self._signals = list(journal.signals)
        self._position = 0
        self._now = datetime.fromtimestamp(now_ms / 1000, UTC)
        self._payloads = payloads
        self._output_of = output_of
        self.requests: list[Request] = []
        self._cached = cached
        self.cache_hits: list[str] = []  # capabilities served from the cache on this replay
        self.cache_misses: list[str] = []
        self._breakers = breakers
        self._route = route

    def call(
        self,
        capability: str,
        value: Record,
        *,
        output: type[R] | None = None,
        timeout: float | timedelta | None = None,
        retry: Retry | None = None,
        cache: float | timedelta | None = None,
        priority: Priority = NORMAL,
    ) -> Step[Any]:
        """Ask the specialist for ``capability``; ``await`` the step for its typed output. A failure
        left after the specialist's retries raises :class:`CallFailed` at the ``await``, no answer
        within ``timeout`` :class:`CallTimeout`.

        ``priority``: the class of request topic the step's requests (and retries) go to; the
        specialist starts ``"critical"`` ones before ``"high"``, ``"normal"`` and ``"low"`` ones.

        ``retry``: the step's own, durable retries: a failure classed TRANSIENT or RESOURCE, or a
        timeout, asks again (a new request) after a backoff timer, up to ``retry.attempts`` requests;
        only then does the error reach the code.

        ``cache``: the call is idempotent; its result is served to later calls of ``capability`` with
        the same input (same wire-format bytes) for this long, without a request (see
        :mod:`streams.workflows.cache` for the cache's scope).

        A circuit breaker declared for ``capability`` (:meth:`streams.App.breaker`) is asked for each
        request the step sends; while it is open the request goes to its fallback capability, or the
        ``await`` raises :class:`CircuitOpen` at once.

        A specialist may hand the request off to another (:class:`~streams.handoffs.Handoff`): the step
        gets the chain's last answer, and its journal entry the chain (``handoffs``)."""
        return self._ask(
            StepKind.CALL, capability, value, output, timeout, retry=retry, cache=cache, priority=priority
        )

    def child(
        self,
        workflow: str,
        value: Record,
        *,
        workflow_id: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Step[Any]:
        """Start workflow ``workflow`` of the same app as a child (id ``workflow_id``, by default
        derived from this workflow's id and the step's position); ``await`` the step for its output.
        A failed child raises :class:`CallFailed` at the ``await``."""
        child_id = workflow_id or f"{self.id}/{self._position}"
        return self._ask(StepKind.CHILD, workflow, value, None, timeout, child_id)

    def _ask(
        self,
        kind: StepKind,
        name: str,
        value: Record,
        output: type[Record] | None,
        timeout: float | timedelta | None,
        child_id: str | None = None,
        retry: Retry | None = None,
        cache: float | timedelta | None = None,
        priority: Priority = NORMAL,
    ) -> Step[Any]:
        """A step answered by someone else: a specialist, or a child workflow."""
        checked(priority)
        result_type = output or self._output_of(kind, name)
        step = self._step(kind, name)
        index = self._position - 1
        if step is None:
            key = None if cache is None else cache_key(name, self._payloads.encode(value))
            hit = None if key is None or self._cached is None else fresh(self._cached(key), self._now)
            self._record(
                JournalStep(
                    kind=kind,
                    name=name,
                    status=StepStatus.PENDING if hit is None else StepStatus.SUCCEEDED,
                    request_id=hdr.derived_id(self.id, self.name, index),
                    started_at=self._now,
                    tries=1 if hit is None else 0,
                    retry=None if retry is None else step_retry(retry),
                    cache_key=key,
                    cache_ttl_ms=None if cache is None else int(_duration(cache).total_seconds() * 1000),
                    cached=hit is not None,
                    result=None if hit is None else hit.result,
                    finished_at=None if hit is None else self._now,
                    answered_as=None if hit is None else self._journal.events,
                    priority=None if priority == NORMAL else priority,
                )
            )
            if key is not None:
                (self.cache_misses if hit is None else self.cache_hits).append(name)
            if hit is None:
                self._request(index, value, timeout, child_id)
        elif step.status is StepStatus.PENDING and step.request_id is None:
            # A per-step retry whose backoff is over: asked again, as a new request.
            tries = max(step.tries, 1) + 1
            self._steps[index] = step.model_copy(
                update={
                    "request_id": retry_request_id(self.id, self.name, index, tries),
                    "tries": tries,
                    "finished_at": None,
                }
            )
            self._request(index, value, timeout, child_id)

        def resolve() -> tuple[bool, Any]:
            current = self._steps[index]
            if current.status is StepStatus.PENDING or current.status is StepStatus.RETRYING:
                return False, None
            if current.status is StepStatus.SUCCEEDED and current.result is not None:
                return True, self._payloads.decode(current.result, result_type)
            tried = f" ({current.tries} requests)" if current.tries > 1 else ""
            if current.error_class == CIRCUIT_OPEN_CLASS:
                raise CircuitOpen(
                    current.error or f"circuit open for {name}",
                    capability=name,
                    error_class=current.error_class,
                    error_kind=current.error_kind,
                )
            if current.status is StepStatus.TIMED_OUT:
                raise CallTimeout(f"{name} did not answer step {index} of workflow {self.id} in time{tried}")
            raise call_failed(
                f"{' -> '.join(current.handoffs) or name} failed after {current.attempts} attempt(s)"
                f"{tried}: {current.error}",
                capability=name,
                error_class=current.error_class,
                error_kind=current.error_kind,
            )

        return Step(resolve, self._answered_as(index))

    def _request(
        self, index: int, value: Record, timeout: float | timedelta | None, child_id: str | None
    ) -> None:
        """Send step ``index``'s request (anew, or again for a retry), waiting at most ``timeout``."""
        step = self._steps[index]
        deadline = self._bounded(None if timeout is None else self._now + _duration(timeout))
        if deadline is not None and deadline <= self._now:
            # The workflow's deadline has passed: nobody would start the request, so none is sent.
            self._steps[index] = step.model_copy(
                update={
                    "status": StepStatus.TIMED_OUT,
                    "deadline": deadline,
                    "finished_at": self._now,
                    "answered_as": self._journal.events,
                }
            )
            return
        request_id = step.request_id
        assert request_id is not None
        if self._breakers is not None and step.kind is StepKind.CALL:
            verdict = self._breakers.decide(step.name, request_id, self._now)
            step = self._steps[index] = decided(step, verdict, self._now, self._journal.events)
            if step.breaker is BreakerDecision.REFUSED:
                return  # failed at once: nothing is sent
        target = step.fallback or step.name
        # Decided once per request and journaled with it: a replay reads the pool, never the loads.
        pool = self._route(target) if self._route is not None and step.kind is StepKind.CALL else None
        self._steps[index] = step.model_copy(update={"deadline": deadline, "pool": pool})
        priority = checked(step.priority or NORMAL)  # as journaled, so a retry keeps its class
        self.requests.append(
            Request(step.kind, target, value, request_id, child_id, deadline, priority, pool)
        )

    def _bounded(self, deadline: datetime | None) -> datetime | None:
        """``deadline``, or the workflow's own if that comes first."""
        limit = self._journal.deadline
        if limit is None:
            return deadline
        return limit if deadline is None else min(deadline, limit)

    def compensate(self, capability: str, value: Record, *, retry: Retry | None = None) -> None:
        """Register the undoing of what the code has done so far (call it once the step it undoes has
        succeeded): if the workflow then fails or is cancelled, ``value`` is sent to the specialist for
        ``capability``, compensations newest first, one at a time, each retried per ``retry`` (default
        :data:`~streams.workflows.saga.COMPENSATION_RETRY`). Journaled: it is sent even if the engine
        crashes meanwhile, and only once."""
        self._output_of(StepKind.CALL, capability)  # an unknown capability fails now, not when unwinding
        if self._step(StepKind.COMPENSATE, capability) is None:
            self._record(
                JournalStep(
                    kind=StepKind.COMPENSATE,
                    name=capability,
                    status=StepStatus.REGISTERED,
                    request=self._payloads.encode(value),
                    retry=step_retry(retry or COMPENSATION_RETRY),
                    started_at=self._now,
                )
            )

    def sleep(self, duration: float | timedelta) -> Step[None]:
        """A durable pause: ``await wf.sleep(timedelta(hours=1))`` resumes after it, whatever restarts
        happen meanwhile."""
        step = self._step(StepKind.SLEEP, "sleep")
        if step is None:
            self._record(
                JournalStep(
                    kind=StepKind.SLEEP,
                    name="sleep",
                    status=StepStatus.PENDING,
                    started_at=self._now,
                    deadline=self._now + _duration(duration),
                )
            )
        index = self._position - 1
        return Step(
            lambda: (self._steps[index].status is not StepStatus.PENDING, None), self._answered_as(index)
        )

    def signal(self, name: str, value: type[R], *, timeout: float | timedelta | None = None) -> Step[R]:
        """Wait for signal ``name`` (sent with :meth:`streams.Client.signal` or ``streams workflow
        signal``) and return its ``value`` record; a signal sent before the code asks is kept for it.
        With ``timeout``, raises :class:`CallTimeout` at the ``await`` if none came in time."""
        step = self._step(StepKind.SIGNAL, name)
        if step is None:
            buffered = next((s for s in self._signals if s.name == name), None)
            if buffered is not None:
                self._signals.remove(buffered)
            self._record(
                JournalStep(
                    kind=StepKind.SIGNAL,
                    name=name,
                    status=StepStatus.PENDING if buffered is None else StepStatus.SUCCEEDED,
                    result=None if buffered is None else buffered.payload,
                    started_at=self._now,
                    finished_at=None if buffered is None else self._now,
                    deadline=None
                    if buffered is not None
                    else self._bounded(None if timeout is None else self._now + _duration(timeout)),
                )
            )
        index = self._position - 1

        def resolve() -> tuple[bool, R | None]:
            current = self._steps[index]
            if current.status is StepStatus.PENDING:
                return False, None
            if current.status is StepStatus.SUCCEEDED and current.result is not None:
                return True, self._payloads.decode(current.result, value)
            raise CallTimeout(f"no signal {name!r} came for workflow {self.id} in time")

        return Step(resolve, self._answered_as(index))  # type: ignore[arg-type]

    async def gather(self, *steps: Awaitable[T]) -> list[T]:
        """The results of ``steps`` (made beforehand, so they run in parallel), in their order; the first
        failure raises. For a deadline and partial results, see :meth:`gather_within`."""
        return [await step for step in steps]

    def gather_within(
        self, *steps: Step[T], timeout: float | timedelta, at_least: int | None = None
    ) -> Step[Gathered[T]]:
        """Scatter-gather with a deadline: ``await`` it for a :class:`Gathered` once every step has an
        outcome or ``timeout`` has passed, whichever comes first. Steps still unanswered then are late
        (their answers are ignored from then on, on every replay). Raises :class:`CallTimeout` if fewer
        than ``at_least`` (default: all) came back successfully."""
        wanted = len(steps) if at_least is None else at_least
        if not 0 <= wanted <= len(steps):
            raise ValueError(f"at_least={at_least} of {len(steps)} steps")
        deadline = self.sleep(timeout)
        deadline_index = self._position - 1

        def resolve() -> tuple[bool, Gathered[T]]:
            fired = self._steps[deadline_index].answered_as
            outcomes = [step.outcome() for step in steps]
            if fired is None and not all(done for done, _, _ in outcomes):
                return False, Gathered([], {}, [])  # not read: the step waits
            values: list[T | None] = []
            failed: dict[int, BaseException] = {}
            late: list[int] = []
            for position, (step, (done, value, error)) in enumerate(zip(steps, outcomes, strict=True)):
                answered = step.answered_as()
                if not done or (fired is not None and answered is not None and answered > fired):
                    late.append(position)  # answered after the deadline: as if it never had
                    values.append(None)
                elif error is not None:
                    failed[position] = error
                    values.append(None)
                else:
                    values.append(value)
            gathered = Gathered(values, failed, late)
            if len(gathered.answered) < wanted:
                raise CallTimeout(
                    f"gather in workflow {self.id}: {len(gathered.answered)} of {len(steps)} answered in "
                    f"time, {wanted} needed ({len(late)} late, {len(failed)} failed)"
                )
            return True, gathered

        del deadline  # its outcome is read through the journal above
        return Step(resolve, self._answered_as(deadline_index))

    def now(self) -> datetime:
        """The time, as it was the first time the code got here (journaled)."""
        return datetime.fromtimestamp(
            int(self._value(StepKind.NOW, lambda: str(int(self._now.timestamp() * 1000)))) / 1000, UTC
        )

    def uuid(self) -> str:
        """A random id, the same on every replay (journaled)."""
        return self._value(StepKind.UUID, lambda: uuid.uuid4().hex)

    def random(self) -> float:
        """A random number in [0, 1), the same on every replay (journaled)."""
        return float(self._value(StepKind.RANDOM, lambda: repr(random.random())))

    def _value(self, kind: StepKind, make: Callable[[], str]) -> str:
        step = self._step(kind, kind.value.lower())
        if step is None:
            step = JournalStep(
                kind=kind,
                name=kind.value.lower(),
                status=StepStatus.SUCCEEDED,
                value=make(),
                started_at=self._now,
                finished_at=self._now,
            )
            self._record(step)
        assert step.value is not None
        return step.value

    def _step(self, kind: StepKind, name: str) -> JournalStep | None:
        """The journal's step at the next position, checked against what the code asks for now."""
        position = self._position
        self._position += 1
        if position >= len(self._steps):
            return None
        step = self._steps[position]
        if step.kind is not kind or step.name != name:
            raise NonDeterminismError(
                f"workflow {self.name} ({self.id}) asked for {kind.value.lower()} {name!r} at step "
                f"{position}, but its journal holds {step.kind.value.lower()} {step.name!r} there: the code "
                "changed under a running workflow, or depends on something not journaled"
            )
        return step

    def _answered_as(self, index: int) -> Callable[[], int | None]:
        return lambda: self._steps[index].answered_as

    def _record(self, step: JournalStep) -> None:
        self._steps.append(step)

    def journal(self) -> WorkflowJournal:
        return self._journal.model_copy(update={"steps": list(self._steps), "signals": list(self._signals)})


WorkflowFunction = Callable[[Any, Workflow], Coroutine[Any, Any, Any]]


def _duration(value: float | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


def replay(
    function: WorkflowFunction,
    journal: WorkflowJournal,
    input_type: type[Record],
    *,
    now_ms: int,
    payloads: Payloads,
    output_of: OutputOf,
    cached: CacheLookup | None = None,
    cache_stats: CacheStats | None = None,
    breakers: Breakers | None = None,
    route: Route | None = None,
) -> Outcome:
    """Run ``function`` against ``journal`` until it returns, fails or waits for an answer;
    ``breakers`` are asked about each new request to a capability, then ``route`` picks its pool."""
    handle = Workflow(journal, now_ms, payloads, output_of, cached, breakers, route)
    try:
        return _run(function, journal, input_type, payloads, handle)
    finally:
        if cache_stats is not None:
            cache_stats.hits.update(handle.cache_hits)
            cache_stats.misses.update(handle.cache_misses)


def _run(
    function: WorkflowFunction,
    journal: WorkflowJournal,
    input_type: type[Record],
    payloads: Payloads,
    handle: Workflow,
) -> Outcome:
    coroutine = function(payloads.decode(journal.input, input_type), handle)
    try:
        yielded = coroutine.send(None)
    except StopIteration as returned:
        return Outcome(handle.journal(), handle.requests, output=returned.value)
    except Exception as exc:  # noqa: BLE001 - whatever the code raises ends the workflow as FAILED
        return Outcome(handle.journal(), handle.requests, error=exc)
    finally:
        coroutine.close()
    if yielded is not SUSPEND:
        error = StreamsError(
            f"workflow {journal.workflow} awaited {yielded!r}: workflow code may await only the "
            "workflow's own operations (wf.call, wf.gather, ...), so that it can be replayed"
        )
        return Outcome(handle.journal(), handle.requests, error=error)
    return Outcome(handle.journal(), handle.requests)
