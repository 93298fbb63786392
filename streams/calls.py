"""Calling specialists from code: ``async with Caller(app) as caller: await caller.call(...)``.

A request goes to the capability's request topic with this caller's reply topic (``<app>.replies``)
and its own id as the reply key in its headers; a follower thread reads the reply topic from the
moment the caller opened and hands each answer for this caller to the call waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import Message

from streams import headers as hdr
from streams.app import App
from streams.config import Settings
from streams.errors import CallTimeout, ConfigError, DeserializationError
from streams.events import WorkflowEvent
from streams.publish import Publisher
from streams.serde.codec import RecordDecoder
from streams.serde.payloads import Payloads
from streams.serde.record import Record
from streams.serde.registry import SchemaRegistry
from streams.specialists import answer, request_headers
from streams.transport.follower import TopicFollower

log = logging.getLogger("streams.calls")


class Caller:
    """Calls the specialists an app declares. Open it once and share it: each open caller follows the
    reply topic, and a call waits only for its own answer."""

    def __init__(
        self, app: App, settings: Settings | None = None, registry: SchemaRegistry | None = None
    ) -> None:
        self._app = app
        self._settings = settings or app.settings
        self._publisher = Publisher(self._settings, registry)
        self._payloads = Payloads(self._publisher.registry)
        self._decode_reply = RecordDecoder(self._publisher.registry, WorkflowEvent)
        self._id = hdr.new_id()
        self._waiting: dict[str, asyncio.Future[WorkflowEvent]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._follower: TopicFollower | None = None

    async def __aenter__(self) -> Caller:
        self._loop = asyncio.get_running_loop()
        follower = TopicFollower(self._settings, self._app.replies_topic().name, self._on_record)
        await asyncio.to_thread(follower.start)
        self._follower = follower
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._follower is not None:
            await asyncio.to_thread(self._follower.stop)
            self._follower = None
        self._publisher.close()

    async def call(
        self,
        capability: str,
        value: Record,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - a call's deadline is part of what is asked
        key: str | bytes | None = None,
        correlation_id: str | None = None,
    ) -> Any:
        """Send ``value`` to the specialist for ``capability`` and return its typed output.

        Raises :class:`~streams.errors.CallFailed` with the specialist's error, or
        :class:`~streams.errors.CallTimeout` after ``timeout`` seconds without an answer (the request
        may still be handled later; its answer is then ignored)."""
        if self._loop is None:
            raise ConfigError("use the Caller inside `async with Caller(app) as caller:`")
        specialist = self._app.specialists.get(capability)
        if specialist is None:
            known = ", ".join(self._app.specialists) or "none"
            raise ConfigError(
                f"app {self._app.name} has no specialist for {capability}; capabilities: {known}"
            )
        waiting: asyncio.Future[WorkflowEvent] = self._loop.create_future()
        request_id = self._publisher.publish(
            specialist.requests,
            value,
            key=key,
            correlation_id=correlation_id,
            extra_headers=request_headers(specialist.replies, self._id),
        )
        self._waiting[request_id] = waiting
        try:
            await asyncio.to_thread(self._publisher.flush, self._settings.kafka_timeout)
            reply = await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            raise CallTimeout(
                f"no answer from {capability} within {timeout:g}s (request {request_id}); "
                f"is a worker of {self._app.name} running it?"
            ) from None
        finally:
            self._waiting.pop(request_id, None)
        return answer(reply, specialist, self._payloads)

    def _on_record(self, message: Message) -> None:
        """On the follower's thread: pass this caller's answers to the loop, skip everyone else's."""
        if message.key() != self._id.encode():
            return
        try:
            reply = self._decode_reply(message.value())
        except DeserializationError as exc:
            log.warning(
                "skipping an undecodable reply at %s[%s]@%s: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                exc,
            )
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._deliver, reply)

    def _deliver(self, reply: WorkflowEvent) -> None:
        waiting = self._waiting.get(reply.request_id or "")
        if waiting is not None and not waiting.done():
            waiting.set_result(reply)
