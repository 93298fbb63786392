"""Specialists: agents reached by capability, whose return value goes back to whoever asked.

A request is a typed record on the capability's request topic; its headers say where the answer goes
(``reply-to``, a topic of :class:`~streams.events.WorkflowEvent` records, and ``reply-key``: a workflow
id, or a caller's). The specialist answers with a ``STEP_SUCCEEDED`` event carrying its output as a
nested record (wire format, schema id first), or ``STEP_FAILED`` with the error that remained after its
retries, so a caller is never left waiting on an error. A specialist may instead hand the request
off to another capability (:class:`~streams.handoffs.Handoff`); the last one of the chain answers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from streams import headers as hdr
from streams.context import Context
from streams.errors import ConfigError, DeadlinePassed, ErrorKind, call_failed
from streams.events import WorkflowEvent, WorkflowEventKind
from streams.handoffs import Handoff, Handoffs, answered_request, handoffs_of
from streams.priorities import NORMAL, Priority, checked
from streams.retry import Retry
from streams.serde.payloads import Payloads
from streams.serde.record import Record
from streams.topics import Topic

log = logging.getLogger("streams.worker")

In = TypeVar("In", bound=Record)
Out = TypeVar("Out", bound=Record)

SpecialistFunction = Callable[[In, Context], Awaitable[Out | Handoff]]


@dataclass(frozen=True)
class Pool(Generic[In]):
    """One consumer group serving a capability (``name`` None: the unnamed pool), with its request
    topic per priority class."""

    name: str | None
    group_id: str
    lanes: Mapping[Priority, Topic[In]]


@dataclass(frozen=True)
class Specialist(Generic[In, Out]):
    """What callers need to know of a specialist: its capability, request topics and record types.

    ``pools`` holds each pool serving the capability (one, unnamed, unless declared with ``pool=``),
    each with one request topic per priority class; ``requests`` is the first pool's ``normal`` one,
    all of its records."""

    capability: str
    requests: Topic[In]
    output: type[Out]
    replies: Topic[WorkflowEvent]
    pools: Mapping[str | None, Pool[In]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (isinstance(self.output, type) and issubclass(self.output, Record)):
            raise ConfigError(f"specialist {self.capability}: output must be a Record subclass")

    def requests_for(self, priority: str = NORMAL, pool: str | None = None) -> Topic[In]:
        """The request topic of ``priority``'s class in ``pool`` (None: the unnamed pool, or the only
        one)."""
        lane = checked(priority)
        if not self.pools:
            return self.requests
        found = self.pools.get(pool)
        if found is None and pool is None and len(self.pools) == 1:
            found = next(iter(self.pools.values()))
        if found is None:
            names = ", ".join(str(name) for name in self.pools)
            raise ConfigError(f"specialist {self.capability} has no pool {pool}; pools: {names}")
        return found.lanes[lane]


def with_pool(
    existing: Specialist[In, Out] | None,
    capability: str,
    pool: Pool[In],
    output: type[Out],
    replies: Topic[WorkflowEvent],
) -> Specialist[In, Out]:
    """``existing`` (or a new specialist) with ``pool`` added; every pool takes and returns the same
    records, so a call may go to any of them."""
    requests = pool.lanes[NORMAL]
    if existing is None:
        return Specialist(capability, requests, output, replies, {pool.name: pool})
    if existing.requests.value is not requests.value or existing.output is not output:
        raise ConfigError(
            f"pool {pool.name} of {capability} takes {requests.value.__name__} and returns "
            f"{output.__name__}; its other pools take {existing.requests.value.__name__} and return "
            f"{existing.output.__name__}"
        )
    return dataclasses.replace(existing, pools={**existing.pools, pool.name: pool})


def lane_topic_name(requests: str, priority: Priority) -> str:
    """A priority class's request topic: ``normal`` keeps the capability's own (so callers that know
    no priorities still reach it), the others add the class: ``<app>.<capability>.requests.high``."""
    return requests if priority == NORMAL else f"{requests}.{priority}"


class SpecialistHandler(Generic[In, Out]):
    """The agent handler around a specialist function: runs it, then replies."""

    def __init__(
        self,
        specialist: Specialist[In, Out],
        function: SpecialistFunction[In, Out],
        retry: Retry,
        handoffs: Handoffs | None = None,
    ) -> None:
        self._specialist = specialist
        self._function = function
        self._retry = retry
        self._handoffs = handoffs
        self._reply_topics: dict[str, Topic[WorkflowEvent]] = {specialist.replies.name: specialist.replies}
        self.__name__ = getattr(function, "__name__", specialist.capability)

    async def __call__(self, request: In, ctx: Context) -> None:
        reply_to = ctx.headers.get(hdr.REPLY_TO)
        if ctx.deadline_ms is not None and ctx.now_ms() >= ctx.deadline_ms:
            # Whoever asked has timed out by its own clock (a workflow's timer, a client's wait), so no
            # answer is owed; the request goes to the dead-letter topic, never started.
            late = (ctx.now_ms() - ctx.deadline_ms) / 1000
            raise DeadlinePassed(f"deadline passed {late:.3f}s before {self._specialist.capability} got it")
        try:
            output = await self._function(request, ctx)
            if isinstance(output, Handoff) and self._handoffs is not None:
                await self._handoffs.send(output, self._specialist, ctx)
                return  # the chain's last specialist answers
            if not isinstance(output, self._specialist.output):
                raise TypeError(
                    f"specialist {self._specialist.capability} returned {type(output).__name__}, "
                    f"not {self._specialist.output.__name__}"
                )
        except Exception as exc:
            if reply_to is None or self._retry.should_retry(exc, ctx.attempt):
                raise  # retried by the worker, or dead-lettered when nobody waits for an answer
            log.warning(
                "specialist %s failed request %s after %d attempt(s): %s: %s",
                self._specialist.capability,
                ctx.message_id,
                ctx.attempt,
                type(exc).__name__,
                exc,
            )
            await self._reply(
                ctx, reply_to, WorkflowEventKind.STEP_FAILED, error=exc, error_kind=self._retry.kind_of(exc)
            )
            return
        if reply_to is not None:
            await self._reply(
                ctx, reply_to, WorkflowEventKind.STEP_SUCCEEDED, payload=ctx.payloads.encode(output)
            )

    async def _reply(
        self,
        ctx: Context,
        reply_to: str,
        kind: WorkflowEventKind,
        *,
        payload: bytes | None = None,
        error: BaseException | None = None,
        error_kind: ErrorKind | None = None,
    ) -> None:
        topic = self._reply_topics.get(reply_to)
        if topic is None:
            topic = self._reply_topics[reply_to] = Topic(reply_to, value=WorkflowEvent)
        reply_key = ctx.headers.get(hdr.REPLY_KEY, "")
        reply = WorkflowEvent(
            kind=kind,
            workflow_id=reply_key,
            name=self._specialist.capability,
            request_id=answered_request(ctx.headers, ctx.message_id),
            payload=payload,
            error=None if error is None else f"{type(error).__name__}: {error}",
            error_class=None if error is None else f"{type(error).__module__}.{type(error).__qualname__}",
            error_kind=None if error_kind is None else error_kind.value,
            attempts=ctx.attempt,
            sender=ctx.agent,
            at=datetime.fromtimestamp(ctx.now_ms() / 1000, UTC),
            handoffs=handoffs_of(ctx.headers),
        )
        await ctx.send(topic, reply, key=reply_key)


def request_headers(replies: Topic[WorkflowEvent], reply_key: str) -> hdr.Headers:
    """What a request carries beside its identity: where and under which key to answer."""
    return [(hdr.REPLY_TO, replies.name.encode()), (hdr.REPLY_KEY, reply_key.encode())]


def answer(reply: WorkflowEvent, specialist: Specialist[Any, Out], payloads: Payloads) -> Out:
    """The output a reply carries, or :class:`CallFailed` with the specialist's error."""
    if reply.kind is not WorkflowEventKind.STEP_SUCCEEDED or reply.payload is None:
        raise call_failed(
            f"{' -> '.join(reply.handoffs) or specialist.capability} failed after {reply.attempts} "
            f"attempt(s): {reply.error}",
            capability=specialist.capability,
            error_class=reply.error_class,
            error_kind=reply.error_kind,
        )
    return payloads.decode(reply.payload, specialist.output)


__all__ = [
    "Pool",
    "Specialist",
    "SpecialistFunction",
    "SpecialistHandler",
    "answer",
    "lane_topic_name",
    "request_headers",
    "with_pool",
]
