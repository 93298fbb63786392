"""Typed handoffs: a specialist answers a request by passing it on to another capability.

A specialist function returns a :class:`Handoff` instead of its output. The request goes on to the
target capability as a new request carrying the typed context (``value``, a record of the target's
input type), and whoever asked gets the answer of the last specialist of the chain, as if the one it
asked had given it. The caller takes no part: the new request carries the caller's reply headers and
the id of the caller's own request (``reply-request``), which the final answer cites, with the chain
of capabilities (``handoff-chain``), which the answer carries back (``WorkflowEvent.handoffs``).
The new request keeps the priority class of the lane it came in on and goes to the target's least
loaded pool (:mod:`streams.routing`).

Each handoff is checked before anything is sent, and refused with :class:`HandoffRefused` (which the
caller gets as the call's failure) when the target is unknown, already in the chain (a cycle), the
chain would pass its hop limit (``handoff-limit``, set by the first handoff from its app's
``STREAMS_MAX_HOPS``, so one chain has one limit), the target answers with another output record than
the specialist handing off (the caller decodes the answer as the output of the capability it asked, so
every capability of a chain returns that record), or the context does not fit the target's input
schema.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from streams import headers as hdr
from streams.context import Context
from streams.errors import HandoffRefused, SerializationError
from streams.priorities import NORMAL, PRIORITIES, Priority
from streams.routing import Grouped, Routing
from streams.serde.record import Record
from streams.topics import Topic

log = logging.getLogger("streams.worker")


@dataclass(frozen=True)
class Handoff:
    """Return it from a specialist to pass the request on: to capability ``to`` of the same app, with
    ``value`` (a record of ``to``'s input type) as its request; ``reason`` says why (sent along in the
    ``handoff-reason`` header, and logged)."""

    to: str
    value: Record
    reason: str | None = None


class Target(Protocol):
    """What a handoff needs to know of a capability (a :class:`~streams.specialists.Specialist`)."""

    @property
    def capability(self) -> str: ...

    @property
    def requests(self) -> Topic[Any]: ...

    @property
    def output(self) -> type[Record]: ...

    @property
    def pools(self) -> Mapping[str | None, Grouped]: ...

    def requests_for(self, priority: str = NORMAL, pool: str | None = None) -> Topic[Any]: ...


def handoffs_of(headers: Mapping[str, str]) -> list[str]:
    """The chain a request came through, first capability to the one it is at now; empty for a
    request nobody handed off."""
    chain = headers.get(hdr.HANDOFF_CHAIN)
    return chain.split(",") if chain else []


def answered_request(headers: Mapping[str, str], message_id: str) -> str:
    """The id of the request an answer cites: the caller's, however often it was handed off."""
    return headers.get(hdr.REPLY_REQUEST) or message_id


class Handoffs:
    """Checks and sends the handoffs of one app's specialists."""

    def __init__(self, targets: Mapping[str, Target], max_hops: int, routing: Routing | None = None) -> None:
        self._targets = targets  # the app's, read at each handoff: specialists declared in any order
        self._max_hops = max_hops
        self._routing = routing or Routing()

    async def send(self, handoff: Handoff, source: Target, ctx: Context) -> None:
        """Send ``handoff`` of the request ``ctx`` is handling by ``source``'s specialist, or raise
        :class:`HandoffRefused` saying why not."""
        chain = handoffs_of(ctx.headers) or [source.capability]
        limit = _limit(ctx.headers, self._max_hops)
        target = self._check(handoff, source, chain, limit)
        headers = [
            (hdr.REPLY_REQUEST, answered_request(ctx.headers, ctx.message_id).encode()),
            (hdr.HANDOFF_CHAIN, ",".join([*chain, target.capability]).encode()),
            (hdr.HANDOFF_LIMIT, str(limit).encode()),
        ]
        for name in (hdr.REPLY_TO, hdr.REPLY_KEY):
            value = ctx.headers.get(name)
            if value is not None:
                headers.append((name, value.encode()))
        if handoff.reason:
            headers.append((hdr.HANDOFF_REASON, handoff.reason.encode()))
        try:
            # The request keeps its class (the lane it came in on) and goes to the least loaded pool.
            lane = target.requests_for(priority_of(ctx.topic), self._routing.choose(target.pools))
            await ctx.send(lane, handoff.value, headers=headers)
        except SerializationError as exc:
            raise self._refused(
                source, f"the context does not fit {target.capability}'s input: {exc}"
            ) from exc
        log.info(
            "%s handed request %s off to %s (%s)",
            source.capability,
            ctx.message_id,
            target.capability,
            handoff.reason or "no reason given",
        )

    def _check(self, handoff: Handoff, source: Target, chain: list[str], limit: int) -> Target:
        to = handoff.to
        target = self._targets.get(to)
        if target is None:
            known = ", ".join(self._targets) or "none"
            raise self._refused(
                source,
                f"{source.capability} handed off to {to}, which is no capability "
                f"of this app; capabilities: {known}",
            )
        path = " -> ".join([*chain, to])
        if to in chain:
            raise self._refused(source, f"handoff cycle: {path} ({to} has had this request already)")
        if len(chain) > limit:
            raise self._refused(source, f"{path} would take {len(chain)} handoffs, over the limit of {limit}")
        if target.output is not source.output:
            raise self._refused(
                source,
                f"{to} answers with {target.output.__name__}, but the caller of {chain[0]} expects "
                f"{source.output.__name__}",
            )
        expected = target.requests.value
        if not isinstance(handoff.value, expected):
            raise self._refused(source, f"{to} takes {expected.__name__}, not {type(handoff.value).__name__}")
        return target

    @staticmethod
    def _refused(source: Target, why: str) -> HandoffRefused:
        return HandoffRefused(
            f"handoff refused: {why}", capability=source.capability, error_class=None, error_kind=None
        )


def priority_of(topic: str) -> Priority:
    """The priority class of a request read from ``topic`` (a lane of a capability's requests)."""
    for priority in PRIORITIES:
        if topic.endswith(f".requests.{priority}"):
            return priority
    return NORMAL


def _limit(headers: Mapping[str, str], default: int) -> int:
    """The chain's limit: set by its first handoff, so every hop of one chain counts to the same."""
    try:
        return int(headers.get(hdr.HANDOFF_LIMIT) or default)
    except ValueError:
        return default  # a foreign client's: this app's own limit


__all__ = ["Handoff", "Handoffs", "Target", "answered_request", "handoffs_of", "priority_of"]
