"""Circuit breakers: ``app.breaker(capability, Breaker(...))`` keeps calls from a capability that has
been failing, and sends them to a fallback capability or fails them at once.

CLOSED, calls go through and their failures and timeouts are counted: ``failures`` of them within
``within`` open the breaker. OPEN, every call is kept from the capability: sent to ``fallback`` if
one is declared, else failed at once with :class:`~streams.errors.CircuitOpen`. Once ``cool_down``
has passed, the next call is let through as a trial (HALF_OPEN; calls meanwhile are kept away as when
open): its success closes the breaker, its failure or timeout opens it for another cool-down. A trial
without an answer after a cool-down is given up and the next call becomes the trial. Counted as
failures: a call's failure left after the specialist's retries, each failed try of a step's own
retries, and a timeout; not a failure classed DATA, which is the input's fault, not the capability's.

Sharing: the states live in the workflow engines' table ``breakers``, keyed by capability. A table is
partitioned by its engine's input, so each partition of each workflow's event topic keeps a copy of
every breaker, and the copies are kept alike by messages, not by a shared store: a partition that
counts a failure or timeout, lets a trial out or sees its trial succeed tells every other partition of
every workflow of the app (a ``BREAKER`` event sent to each, in the transaction that made the change),
and each applies the news to its copy as it applies its own outcomes. So every copy counts every
failure, opens and closes with the others, and holds back its calls while another partition's trial
is out; a partition hears of a change as soon as its engine reads the event (until then it decides
with what it knew, so calls made at the same moment may let one trial out per partition). A copy
moves with its partition, survives restarts, and changes in the engine's transaction, with the
journal whose answer or request changed it.

Determinism: the breaker is asked once per request, when the code asks for the call (or a retry asks
again), and its answer is journaled with the step (``breaker`` and ``fallback``); a replay reads the
journal, never the breaker. Outcomes are counted from the journal's changes, once per event.

Concurrency: the engine handles several workflows of a partition at once, and a table view shows a
handler call only the writes committed before it started. So the partition's breakers are also kept
in memory (in the table's partition cache, dropped with the partition), read and changed by every call
at once, and each change is written to the table by the call that made it. A handler attempt that
fails leaves its changes there, but they are keyed by request ids derived from the journal, so its
retry decides the same and counts nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from streams.errors import CircuitOpen, ConfigError, ErrorKind
from streams.events import (
    BreakerChange,
    BreakerDecision,
    BreakerNews,
    BreakerState,
    BreakerStatus,
    JournalStep,
    StepKind,
    StepStatus,
    WorkflowJournal,
)
from streams.specialists import Specialist
from streams.state.view import TableView
from streams.tables import Table

BREAKERS = Table(name="breakers", value=BreakerState)

CIRCUIT_OPEN_CLASS = f"{CircuitOpen.__module__}.{CircuitOpen.__qualname__}"

_BOARD = "breakers"
_REMEMBERED = 4096  # request ids whose outcome was counted, kept for a retried handler attempt

_ANSWERED = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.TIMED_OUT, StepStatus.RETRYING)
_COUNTED = (BreakerDecision.CLOSED, BreakerDecision.TRIAL)  # requests that went to the capability


@dataclass(frozen=True)
class Breaker:
    """A circuit breaker's policy: open after ``failures`` failures or timeouts within ``within``
    (seconds, or a timedelta), let a trial call through after ``cool_down``; while open, send calls
    to the ``fallback`` capability (same input and output records), or fail them with
    :class:`~streams.errors.CircuitOpen` when there is none."""

    failures: int = 5
    within: float | timedelta = 60.0
    cool_down: float | timedelta = 30.0
    fallback: str | None = None

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ConfigError("Breaker.failures must be >= 1")
        if self.window <= timedelta(0) or self.pause <= timedelta(0):
            raise ConfigError("Breaker.within and Breaker.cool_down must be longer than 0")

    @property
    def window(self) -> timedelta:
        return _duration(self.within)

    @property
    def pause(self) -> timedelta:
        return _duration(self.cool_down)


@dataclass(frozen=True)
class Verdict:
    """What a breaker decided for one request: where it goes (None: nowhere, it fails with ``reason``)."""

    decision: BreakerDecision
    send_to: str | None
    reason: str = ""


class BreakerStats:
    """What the breakers of one engine did since its worker started (read by the metrics endpoint):
    the latest state seen per (capability, partition), opens, and calls kept from the capability
    (``short_circuited``), of which ``fallbacks`` went to the fallback."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, int], BreakerStatus] = {}
        self.opens: Counter[str] = Counter()
        self.short_circuited: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()

    def open_in(self, partitions: Iterable[int]) -> list[str]:
        """The capabilities whose breaker is not CLOSED in any of ``partitions`` (the ones the worker
        owns now: a revoked partition's last state is stale), sorted."""
        owned = set(partitions)
        return sorted(
            {
                capability
                for (capability, partition), status in self.states.items()
                if partition in owned and status is not BreakerStatus.CLOSED
            }
        )


@dataclass(frozen=True)
class News:
    """A change of one partition's breaker that every other partition must hear of (the engine
    sends it as a ``BREAKER`` event to each)."""

    change: BreakerChange
    capability: str
    request_id: str
    error: str | None = None


class _Board:
    """One partition's breakers as the engine's concurrent handler calls share them."""

    def __init__(self) -> None:
        self.states: dict[str, BreakerState] = {}
        # What each outcome counted so far produced (an ordered map: the oldest are forgotten first).
        self.counted: dict[str, News | None] = {}

    def counted_before(self, key: str) -> tuple[bool, News | None]:
        """Whether ``key`` (a request's outcome, a heard event) was counted before, and its news."""
        if key in self.counted:
            return True, self.counted[key]
        return False, None

    def count(self, key: str, news: News | None) -> None:
        self.counted[key] = news
        if len(self.counted) > _REMEMBERED:
            del self.counted[next(iter(self.counted))]


class Breakers:
    """The breakers of one partition, as one engine event sees them: asked for each new request
    (:meth:`decide`), told of each answer (:meth:`observe`) and of other partitions' news
    (:meth:`hear`). Writes go through the table view, so they commit with the event's journal or not
    at all; ``news`` collects what the engine must tell the other partitions, in the same transaction."""

    def __init__(
        self,
        policies: Mapping[str, Breaker],
        specialists: Mapping[str, Specialist[Any, Any]],
        table: Callable[[], TableView[BreakerState]],
        partition: int,
        stats: BreakerStats,
    ) -> None:
        self._policies = policies
        self._specialists = specialists
        self._table = table  # opened on first use: most events of most workflows need no breaker
        self._partition = partition
        self._stats = stats
        self.news: list[News] = []

    def decide(self, capability: str, request_id: str, now: datetime) -> Verdict | None:
        """Where the request ``request_id`` for ``capability`` goes; None when no breaker guards it."""
        policy = self._policies.get(capability)
        if policy is None:
            return None
        state = self._get(capability, now)
        if state.status is BreakerStatus.CLOSED:
            return Verdict(BreakerDecision.CLOSED, capability)
        if state.status is BreakerStatus.HALF_OPEN and state.trial_request_id == request_id:
            # The trial, asked again by a retried handler attempt: its claim is told again too.
            self._set(state)
            self.news.append(News(BreakerChange.TRIAL, capability, request_id))
            return Verdict(BreakerDecision.TRIAL, capability)
        if _trial_due(state, policy, now):
            self._set(_claimed(state, request_id, now))
            self.news.append(News(BreakerChange.TRIAL, capability, request_id))
            return Verdict(BreakerDecision.TRIAL, capability)
        self._stats.short_circuited[capability] += 1
        if policy.fallback is not None:
            self._check_fallback(capability, policy.fallback)
            self._stats.fallbacks[capability] += 1
            return Verdict(BreakerDecision.FALLBACK, policy.fallback)
        return Verdict(BreakerDecision.REFUSED, None, _refusal(state))

    def observe(self, before: WorkflowJournal, after: WorkflowJournal, now: datetime) -> None:
        """Count the outcomes ``after`` has and ``before`` had not: requests that went to a guarded
        capability and were answered (or timed out) by this event."""
        for index, old in enumerate(before.steps):
            if (
                old.kind is not StepKind.CALL
                or old.status is not StepStatus.PENDING
                or old.request_id is None
                or old.breaker not in _COUNTED
                or index >= len(after.steps)
            ):
                continue
            new = after.steps[index]
            if new.request_id != old.request_id or new.status not in _ANSWERED:
                continue
            if new.status is StepStatus.SUCCEEDED:
                self._change(old.name, old.request_id, now, BreakerChange.CLOSED, None, tell=True)
            elif new.error_kind != ErrorKind.DATA.value:  # the input's fault, not the capability's
                error = new.error or ("no answer in time" if new.status is StepStatus.TIMED_OUT else None)
                self._change(old.name, old.request_id, now, BreakerChange.FAILED, error, tell=True)

    def hear(self, news: BreakerNews, error: str | None, now: datetime, message_id: str) -> None:
        """Another partition's news (a ``BREAKER`` event, ``message_id``): a failure it counted, a
        trial it let through, or its trial's success. Heard news is not told on."""
        self._change(news.capability, news.request_id, now, news.change, error, tell=False, key=message_id)

    def _change(
        self,
        capability: str,
        request_id: str,
        now: datetime,
        change: BreakerChange,
        error: str | None,
        *,
        tell: bool,
        key: str | None = None,
    ) -> None:
        policy = self._policies.get(capability)
        if policy is None:
            return  # not guarded (any more)
        state = self._get(capability, now)
        board = self._board()
        seen, told = board.counted_before(key or request_id)
        if seen:
            # Counted by an attempt that failed: this one writes (and tells) what that one left.
            self._set(state)
            if told is not None:
                self.news.append(told)
            return
        if change is BreakerChange.FAILED:
            changed = _failed(state, policy, request_id, now, error)
        elif change is BreakerChange.CLOSED:
            changed = _succeeded(state, request_id, now, remote=not tell)
        else:
            changed = _claimed(state, request_id, now) if state.status is BreakerStatus.OPEN else None
        news = News(change, capability, request_id, error) if tell and changed is not None else None
        board.count(key or request_id, news)
        if changed is None:
            return
        if changed.status is BreakerStatus.OPEN and changed.opens > state.opens:
            self._stats.opens[capability] += 1
        self._set(changed)
        if news is not None:
            self.news.append(news)

    def _check_fallback(self, capability: str, fallback: str) -> None:
        primary, spare = self._specialists.get(capability), self._specialists.get(fallback)
        if spare is None:
            known = ", ".join(self._specialists) or "none"
            raise ConfigError(
                f"the breaker of {capability} falls back to {fallback}, which no specialist serves; "
                f"capabilities: {known}"
            )
        if primary is not None and (
            spare.requests.value is not primary.requests.value or spare.output is not primary.output
        ):
            raise ConfigError(
                f"fallback {fallback} takes {spare.requests.value.__name__} and returns "
                f"{spare.output.__name__}; {capability} takes {primary.requests.value.__name__} and "
                f"returns {primary.output.__name__}: a fallback must take and return the same records"
            )

    def _board(self) -> _Board:
        cache = self._table().cache()
        board = cache.get(_BOARD)
        if not isinstance(board, _Board):
            board = cache[_BOARD] = _Board()
        return board

    def _get(self, capability: str, now: datetime) -> BreakerState:
        board = self._board()
        state = board.states.get(capability)
        if state is None:
            found = self._table().get(capability)
            state = board.states[capability] = found if found is not None else _closed(capability, now)
        self._stats.states[(capability, self._partition)] = state.status
        return state

    def _set(self, state: BreakerState) -> None:
        self._board().states[state.capability] = state
        self._table().set(state.capability, state)
        self._stats.states[(state.capability, self._partition)] = state.status


def decided(step: JournalStep, verdict: Verdict | None, now: datetime, events: int) -> JournalStep:
    """``step`` with what its breaker decided for the request it is about to send: where it goes,
    or, refused, failed at once with :class:`~streams.errors.CircuitOpen` (``events``: the journal's
    event count, which orders the outcome)."""
    if verdict is None:
        return step.model_copy(update={"breaker": None, "fallback": None})
    if verdict.send_to is None:
        return step.model_copy(
            update={
                "status": StepStatus.FAILED,
                "breaker": verdict.decision,
                "fallback": None,
                "error": verdict.reason,
                "error_class": CIRCUIT_OPEN_CLASS,
                "error_kind": ErrorKind.FATAL.value,
                "finished_at": now,
                "answered_as": events,
            }
        )
    fallback = verdict.send_to if verdict.decision is BreakerDecision.FALLBACK else None
    return step.model_copy(update={"breaker": verdict.decision, "fallback": fallback})


def _closed(capability: str, now: datetime) -> BreakerState:
    return BreakerState(capability=capability, status=BreakerStatus.CLOSED, updated_at=now)


def _trial_due(state: BreakerState, policy: Breaker, now: datetime) -> bool:
    """Whether a call now is let through as a trial: the cool-down is over, and no trial is out (or
    the one out has not answered within a cool-down, and is given up)."""
    if state.status is BreakerStatus.OPEN:
        return state.retry_at is None or now >= state.retry_at
    if state.status is BreakerStatus.HALF_OPEN:
        return state.trial_at is None or now >= state.trial_at + policy.pause
    return False


def _succeeded(state: BreakerState, request_id: str, now: datetime, *, remote: bool) -> BreakerState | None:
    """A success closes a half-open breaker when it answers this partition's trial, and any breaker
    not closed when another partition tells of its trial's success; it changes nothing else."""
    if state.status is BreakerStatus.CLOSED:
        return None
    if remote or (state.status is BreakerStatus.HALF_OPEN and state.trial_request_id == request_id):
        return state.model_copy(
            update={
                "status": BreakerStatus.CLOSED,
                "failures": [],
                "retry_at": None,
                "trial_request_id": None,
                "trial_at": None,
                "updated_at": now,
            }
        )
    return None


def _claimed(state: BreakerState, request_id: str, now: datetime) -> BreakerState:
    """Half-open: ``request_id`` is the trial (this partition's, or another's it was told of)."""
    return state.model_copy(
        update={
            "status": BreakerStatus.HALF_OPEN,
            "trial_request_id": request_id,
            "trial_at": now,
            "updated_at": now,
        }
    )


def _failed(
    state: BreakerState, policy: Breaker, request_id: str, now: datetime, error: str | None
) -> BreakerState | None:
    """A failure: counted while closed (enough of them within the window open the breaker); a failed
    trial re-opens it. Answers to requests sent before it opened change nothing."""
    if state.status is BreakerStatus.HALF_OPEN and state.trial_request_id == request_id:
        return _opened(state, policy, now, error)
    if state.status is not BreakerStatus.CLOSED:
        return None
    recent = [at for at in state.failures if at > now - policy.window] + [now]
    if len(recent) >= policy.failures:
        return _opened(state, policy, now, error)
    return state.model_copy(update={"failures": recent[-policy.failures :], "updated_at": now})


def _opened(state: BreakerState, policy: Breaker, now: datetime, error: str | None) -> BreakerState:
    return state.model_copy(
        update={
            "status": BreakerStatus.OPEN,
            "failures": [],
            "opened_at": now,
            "retry_at": now + policy.pause,
            "trial_request_id": None,
            "trial_at": None,
            "opens": state.opens + 1,
            "last_error": error or state.last_error,
            "updated_at": now,
        }
    )


def _refusal(state: BreakerState) -> str:
    since = "" if state.opened_at is None else f" since {state.opened_at.isoformat()}"
    trial = "" if state.retry_at is None else f"; next trial from {state.retry_at.isoformat()}"
    last = "" if state.last_error is None else f"; last error: {state.last_error}"
    return f"circuit open for {state.capability}{since}{trial}{last}"


def _duration(value: float | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


__all__ = [
    "BREAKERS",
    "CIRCUIT_OPEN_CLASS",
    "Breaker",
    "BreakerStats",
    "Breakers",
    "News",
    "Verdict",
    "decided",
]
