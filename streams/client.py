"""Using an app from code: call its specialists, start its workflows and wait for their results.

``async with Client(app) as client: await client.call(...)``. A request goes to the capability's
request topic with the client's reply topic (``<app>.replies``) and its own id as the reply key in its
headers; a follower thread reads the reply topic from the moment the client opened and hands each
answer for this client to the call waiting for it. Workflow results come the same way, from the
workflow's event topic, followed from the first time the client starts or awaits that workflow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from confluent_kafka import Message

from streams import headers as hdr
from streams.app import App
from streams.config import Settings
from streams.errors import CallTimeout, ConfigError, DeserializationError
from streams.events import WorkflowEvent
from streams.priorities import Priority
from streams.publish import Publisher
from streams.serde.codec import RecordDecoder
from streams.serde.payloads import Payloads
from streams.serde.record import Record
from streams.serde.registry import SchemaRegistry
from streams.specialists import answer, request_headers
from streams.telemetry.config import TelemetryConfig
from streams.telemetry.loads import follow_loads
from streams.topics import Topic
from streams.transport import clients
from streams.transport.async_producer import AsyncProducer
from streams.transport.follower import TopicFollower
from streams.workflows.engine import WorkflowDefinition
from streams.workflows.messages import ENDINGS, cancel_event, result_of, signal_event, start_event

log = logging.getLogger("streams.client")

T = TypeVar("T")


class Client:
    """Calls the specialists and starts the workflows an app declares. Open it once and share it: each
    open client follows the reply topic, and a call waits only for its own answer."""

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
        self._endings: dict[str, asyncio.Future[WorkflowEvent]] = {}  # by workflow id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._follower: TopicFollower | None = None
        # One follower per workflow, however many calls ask for it at once: each call awaits its start.
        self._workflow_followers: dict[str, asyncio.Future[TopicFollower]] = {}
        # Sends on the loop, each awaited until the broker has it: no thread hop, no flush of others'.
        self._sender: AsyncProducer | None = None
        self._ready: dict[str, asyncio.Future[None]] = {}  # topics whose metadata and schema id are known
        self._stop_loads: Callable[[], None] | None = None

    async def __aenter__(self) -> Client:
        self._loop = asyncio.get_running_loop()
        # No linger: a caller awaits each send, so a batch waiting to fill is only latency.
        self._sender = clients.async_producer(
            self._settings, client_id=f"streams-client-{self._id[:8]}", linger_ms=0
        )
        if self._app.specialists:
            follower = TopicFollower(self._settings, self._app.replies_topic().name, self._on_record)
            await asyncio.to_thread(follower.start)
            self._follower = follower
            self._stop_loads = await asyncio.to_thread(
                follow_loads,
                self._app,
                self._settings,
                self._publisher.registry,
                TelemetryConfig().heartbeat_topic,
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Followers still starting are waited for, so none is left running.
        outcomes = await asyncio.gather(*self._workflow_followers.values(), return_exceptions=True)
        started = [follower for follower in outcomes if isinstance(follower, TopicFollower)]
        followers = [*started, *([self._follower] if self._follower else [])]
        for follower in followers:
            await asyncio.to_thread(follower.stop)
        self._follower = None
        self._workflow_followers.clear()
        if self._stop_loads is not None:
            await asyncio.to_thread(self._stop_loads)
            self._stop_loads = None
        if self._sender is not None:
            await asyncio.to_thread(self._sender.close, self._settings.kafka_timeout)
            self._sender = None
        self._publisher.close()

    async def _send(
        self,
        topic: Topic[Any],
        value: Record,
        *,
        key: str | bytes | None,
        correlation_id: str | None,
        extra_headers: list[tuple[str, bytes]] | None = None,
        sent: Callable[[str], None] | None = None,
    ) -> str:
        """Send one event and return its message id once the broker has it; ``sent(message_id)`` is
        called before anything can answer it. Raises TransportError if it cannot be delivered."""
        if self._sender is None:
            raise ConfigError("use the Client inside `async with Client(app) as client:`")
        # Blocking, once per topic: the topic's metadata and the schema's id from the registry.
        await _once(self._ready, topic.name, lambda: asyncio.to_thread(self._look_up, topic))
        event = self._publisher.prepare(
            topic, value, key=key, correlation_id=correlation_id, extra_headers=extra_headers
        )
        if sent is not None:
            sent(event.message_id)
        delivery = await self._sender.send(event.topic, event.value, event.key, event.headers)
        await delivery
        return event.message_id

    async def call(
        self,
        capability: str,
        value: Record,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - a call's deadline is part of what is asked
        key: str | bytes | None = None,
        correlation_id: str | None = None,
        priority: Priority = "normal",
    ) -> Any:
        """Send ``value`` to the specialist for ``capability`` and return its typed output (the last
        one's, when specialists hand the request off: :class:`~streams.handoffs.Handoff`).

        Raises :class:`~streams.errors.CallFailed` with the specialist's error
        (:class:`~streams.errors.HandoffRefused` for a refused handoff), or
        :class:`~streams.errors.CallTimeout` after ``timeout`` seconds without an answer. The request
        carries that deadline, so a specialist that gets to it later dead-letters it unstarted.
        ``priority`` picks the request topic of that class (``"critical"``, ``"high"``, ``"normal"``
        or ``"low"``): the specialist starts higher ones first."""
        if self._loop is None:
            raise ConfigError("use the Client inside `async with Client(app) as client:`")
        specialist = self._app.specialists.get(capability)
        if specialist is None:
            known = ", ".join(self._app.specialists) or "none"
            raise ConfigError(
                f"app {self._app.name} has no specialist for {capability}; capabilities: {known}"
            )
        requests = specialist.requests_for(priority, self._app.routing.choose(specialist.pools))
        waiting: asyncio.Future[WorkflowEvent] = self._loop.create_future()
        request_id = ""

        def sent(message_id: str) -> None:
            nonlocal request_id
            request_id = message_id
            self._waiting[message_id] = waiting

        try:
            await self._send(
                requests,
                value,
                key=key,
                correlation_id=correlation_id,
                extra_headers=[
                    *request_headers(specialist.replies, self._id),
                    hdr.deadline_header(_now_ms() + int(timeout * 1000)),
                ],
                sent=sent,
            )
            reply = await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            raise CallTimeout(
                f"no answer from {capability} within {timeout:g}s (request {request_id}); "
                f"is a worker of {self._app.name} running it?"
            ) from None
        finally:
            self._waiting.pop(request_id, None)
        return answer(reply, specialist, self._payloads)

    async def start(
        self,
        workflow: str,
        value: Record,
        *,
        workflow_id: str | None = None,
        correlation_id: str | None = None,
    ) -> str:
        """Start workflow ``workflow`` with input ``value``; returns its id (new, or ``workflow_id``:
        starting an id that exists already changes nothing). Await its end with :meth:`result`."""
        definition = await self._follow(workflow)
        workflow_id = workflow_id or hdr.new_id()
        self._ending(workflow_id)
        event = start_event(definition, value, workflow_id, self._payloads, f"client-{self._id}", _now_ms())
        await self._send(definition.events, event, key=workflow_id, correlation_id=correlation_id)
        return workflow_id

    async def signal(
        self, workflow: str, workflow_id: str, name: str, value: Record, *, correlation_id: str | None = None
    ) -> None:
        """Send signal ``name`` carrying ``value`` to a workflow (``wf.signal(name, type)`` receives it;
        one sent before the code asks is kept for it)."""
        definition = self._definition(workflow)
        event = signal_event(
            definition, workflow_id, name, value, self._payloads, f"client-{self._id}", _now_ms()
        )
        await self._send(definition.events, event, key=workflow_id, correlation_id=correlation_id)

    async def cancel(
        self, workflow: str, workflow_id: str, reason: str | None = None, *, correlation_id: str | None = None
    ) -> None:
        """Ask a workflow to stop where it is: its engine marks it CANCELLED and reports the end, so
        :meth:`result` raises :class:`~streams.errors.WorkflowCancelled`. Answers to the steps it was
        waiting for are then ignored. A workflow that has ended already is left as it ended."""
        definition = await self._follow(workflow)  # before sending: the report must not slip past
        self._ending(workflow_id)
        event = cancel_event(definition, workflow_id, reason, f"client-{self._id}", _now_ms())
        await self._send(definition.events, event, key=workflow_id, correlation_id=correlation_id)

    async def result(self, workflow: str, workflow_id: str, *, timeout: float = 60.0) -> Any:  # noqa: ASYNC109
        """The typed output of a workflow this client started (or awaits from before it ends); raises
        :class:`~streams.errors.WorkflowFailed` if it failed (:class:`~streams.errors.WorkflowCancelled`
        if it was cancelled), :class:`CallTimeout` after ``timeout``."""
        definition = await self._follow(workflow)
        try:
            ending = await asyncio.wait_for(asyncio.shield(self._ending(workflow_id)), timeout)
        except TimeoutError:
            raise CallTimeout(
                f"workflow {workflow} ({workflow_id}) did not end within {timeout:g}s; "
                f"is a worker of {self._app.name} running it?"
            ) from None
        self._endings.pop(workflow_id, None)
        return result_of(ending, definition, self._payloads)

    def _ending(self, workflow_id: str) -> asyncio.Future[WorkflowEvent]:
        assert self._loop is not None
        ending = self._endings.get(workflow_id)
        if ending is None:
            ending = self._endings[workflow_id] = self._loop.create_future()
        return ending

    def _definition(self, workflow: str) -> WorkflowDefinition:
        if self._loop is None:
            raise ConfigError("use the Client inside `async with Client(app) as client:`")
        definition = self._app.workflows.get(workflow)
        if definition is None:
            known = ", ".join(self._app.workflows) or "none"
            raise ConfigError(f"app {self._app.name} has no workflow {workflow}; workflows: {known}")
        return definition

    async def _follow(self, workflow: str) -> WorkflowDefinition:
        """The workflow's definition, with its event topic followed from now on."""
        definition = self._definition(workflow)
        await _once(self._workflow_followers, workflow, lambda: self._start_follower(definition.events.name))
        return definition

    def _look_up(self, topic: Topic[Any]) -> None:
        _ = self._publisher.encoder(topic).schema_id

    async def _start_follower(self, topic: str) -> TopicFollower:
        follower = TopicFollower(self._settings, topic, self._on_workflow_event)
        await asyncio.to_thread(follower.start)
        return follower

    def _on_workflow_event(self, message: Message) -> None:
        """On a follower's thread: the end of a workflow someone here waits for."""
        key = message.key()
        if key is None or key.decode(errors="replace") not in self._endings:
            return
        try:
            event = self._decode_reply(message.value())
        except DeserializationError as exc:
            log.warning("skipping an undecodable workflow event: %s", exc)
            return
        if event.kind in ENDINGS:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._ended, event)

    def _ended(self, event: WorkflowEvent) -> None:
        ending = self._endings.get(event.workflow_id)
        if ending is not None and not ending.done():
            ending.set_result(event)

    def _on_record(self, message: Message) -> None:
        """On the follower's thread: pass this client's answers to the loop, skip everyone else's."""
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


async def _once(started: dict[str, asyncio.Future[T]], key: str, start: Callable[[], Awaitable[T]]) -> T:
    """``start()`` once per ``key``, however many calls ask at once: each awaits the one run. A run
    that failed is forgotten, so the next call tries again."""
    future = started.get(key)
    if future is None:
        future = started[key] = asyncio.ensure_future(start())
    try:
        return await asyncio.shield(future)
    except Exception:
        if started.get(key) is future:
            del started[key]
        raise


def _now_ms() -> int:
    return int(time.time() * 1000)
