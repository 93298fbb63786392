"""What workflow code gets back and what a replay produces: steps to await, gathered results, the
requests a run asks for and its outcome. Shared by :mod:`streams.workflows.replay` and the engine."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from streams.errors import CallFailed, CallTimeout, StreamsError
from streams.events import StepKind, WorkflowJournal
from streams.priorities import NORMAL, Priority
from streams.serde.record import Record

T = TypeVar("T")

SUSPEND = object()  # what a step without an answer yields to the driver


class NonDeterminismError(StreamsError):
    """The workflow's code asked for a different operation than its journal holds at that position."""


@dataclass(frozen=True)
class Request:
    """A call or child workflow the code asked for anew: the engine sends it once the journal that
    records it commits. ``name`` is the capability, or the child workflow (started as ``child_id``)."""

    kind: StepKind
    name: str
    value: Record
    request_id: str
    child_id: str | None = None
    deadline: datetime | None = None  # travels with the request: nobody starts it after this
    priority: Priority = NORMAL  # the class of request topic it goes to
    pool: str | None = None  # the pool of the capability it goes to, as journaled


@dataclass
class Outcome:
    journal: WorkflowJournal
    requests: list[Request] = field(default_factory=list)
    output: Record | None = None
    error: BaseException | None = None

    @property
    def suspended(self) -> bool:
        return self.output is None and self.error is None


OutputOf = Callable[[StepKind, str], type[Record]]
"""The output record type of a capability or a child workflow (from the app's declarations)."""


class Step(Generic[T]):
    """A durable operation's result, to ``await``. The operation was registered when the step was made,
    so several steps made before the first ``await`` run in parallel."""

    def __init__(self, resolve: Callable[[], tuple[bool, T]], answered_as: Callable[[], int | None]) -> None:
        self._resolve = resolve
        self.answered_as = answered_as  # when the journal got its outcome (None: not yet)

    def __await__(self) -> Generator[Any, None, T]:
        done, value = self._resolve()
        while not done:
            yield SUSPEND
            done, value = self._resolve()
        return value

    def outcome(self) -> tuple[bool, T | None, BaseException | None]:
        """Without waiting: whether it has an outcome, and its value or error."""
        try:
            done, value = self._resolve()
        except (CallFailed, CallTimeout) as exc:
            return True, None, exc
        return done, value if done else None, None


@dataclass(frozen=True)
class Gathered(Generic[T]):
    """What a gather with a deadline got: ``values[i]`` is step i's output, or None where it failed
    (``failed[i]`` says why) or had not answered by the deadline (``late``)."""

    values: list[T | None]
    failed: dict[int, BaseException]
    late: list[int]

    @property
    def answered(self) -> list[T]:
        """The outputs that came in time, in the steps' order."""
        return [value for value in self.values if value is not None]
