"""``TestApp``: run an app's agents on an in-memory broker and registry, through the worker's own code.

Each agent gets the real :class:`~streams.worker.handling.MessageHandler` (decode, dedup, retries,
middleware, dead letters), :class:`~streams.worker.processing.Processor` (key lanes, concurrency,
offsets) and delivery mode; only the transport differs. Retries wait on a :class:`FakeClock` that
advances instantly, so a test with backoffs of minutes runs in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from streams import headers as hdr
from streams.agent import Agent
from streams.app import App
from streams.errors import CallTimeout, ConfigError
from streams.events import BreakerState, WorkflowJournal
from streams.middleware import Chain
from streams.priorities import Priority
from streams.routing import LoadSource
from streams.serde.codec import AvroEncoder, RecordDecoder, encode_key
from streams.serde.payloads import Payloads
from streams.serde.record import Record
from streams.serde.registry import InMemoryRegistry, subject_for
from streams.specialists import answer, request_headers
from streams.tables import Table
from streams.testing.broker import InMemoryBroker
from streams.testing.twin import FakeClock, TwinLoads, TwinWorker
from streams.timestamps import epoch_millis
from streams.topics import Topic
from streams.worker.deadletter import replayed_letter
from streams.worker.stats import WorkerStats
from streams.workflows.breaker import BREAKERS
from streams.workflows.engine import JOURNAL, WorkflowDefinition
from streams.workflows.messages import ENDINGS, cancel_event, result_of, signal_event, start_event

V = TypeVar("V", bound=Record)
TP = tuple[str, int]


@dataclass(frozen=True)
class Sent:
    """A message on a topic of the twin, value decoded; ``headers`` as text."""

    topic: str
    partition: int
    offset: int
    key: str | bytes | None
    value: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered message: the original bytes and headers, and why it failed."""

    agent: str
    value: bytes | None
    key: bytes | None
    reason: str
    error_class: str
    attempts: int
    source: str  # topic/partition@offset
    headers: dict[str, str]


class TestApp:
    """``async with TestApp(app) as t: await t.publish(topic, value, key=...)`` then inspect
    :meth:`sent`, :meth:`dead_letters` and :meth:`committed`. ``agents`` narrows which agents run."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self, app: App, agents: Sequence[str] | None = None, *, clock: FakeClock | None = None
    ) -> None:
        unknown = [name for name in agents or () if name not in app.agents]
        if unknown:
            raise ConfigError(
                f"app {app.name} has no agent {', '.join(unknown)}; agents: {', '.join(app.agents)}"
            )
        self.app = app
        self.clock = clock or FakeClock()
        self.registry = InMemoryRegistry()
        self.payloads = Payloads(self.registry)
        self.broker = InMemoryBroker(self.clock.millis)
        self._encoders: dict[str, AvroEncoder] = {}
        for topic in app.topics.values():
            self.broker.create_topic(topic.name, topic.partitions)
        chosen = [app.agents[name] for name in agents] if agents else list(app.agents.values())
        self._workers = {
            agent.name: TwinWorker(
                agent, self.broker, self.registry, self.payloads, self.clock, Chain(app.middleware)
            )
            for agent in chosen
        }
        self._started = False
        self._routing_source: LoadSource | None = None

    async def __aenter__(self) -> TestApp:
        self._started = True
        # Least-load routing sees the twin's agents: a pool is in rotation while its agent runs here.
        self._routing_source, self.app.routing.source = self.app.routing.source, TwinLoads(self._workers)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.app.routing.source = self._routing_source
        for worker in self._workers.values():
            await worker.stop()

    # ----------------------------------------------------------------- input

    async def publish(
        self,
        topic: Topic[V],
        value: V | Mapping[str, Any],
        *,
        key: str | bytes | None = None,
        correlation_id: str | None = None,
        message_id: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        timestamp: datetime | None = None,
        settle: bool = True,
    ) -> str:
        """Publish as :class:`streams.Publisher` does (validated, with identity headers; ``message_id``
        to publish the same message again; ``timestamp`` for the record, else the fake clock's now);
        by default wait until every agent has handled everything it caused. Returns the message id."""
        origin = hdr.origin_headers(correlation_id, message_id)
        payload = self._encoder(topic)(value)
        self.broker.append(
            topic.name,
            payload,
            encode_key(key),
            [*origin, *headers],
            timestamp_ms=None if timestamp is None else epoch_millis(timestamp),
        )
        if settle:
            await self.settle()
        return origin[0][1].decode()

    async def call(
        self,
        capability: str,
        value: Record,
        *,
        key: str | bytes | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline on the fake clock, carried as a header
        priority: Priority = "normal",
        settle: bool = True,
    ) -> Any:
        """Ask the app's specialist for ``capability``, as :class:`streams.Client` does (to the request
        topic of ``priority``), and return its typed output once everything has settled;
        :class:`CallFailed` if it failed, :class:`CallTimeout` if nothing answered (``timeout``: the
        request's deadline, in seconds of the fake clock). ``settle=False`` only sends the request and
        returns its id (to queue several before the specialist runs)."""
        specialist = self.app.specialists.get(capability)
        if specialist is None:
            known = ", ".join(self.app.specialists) or "none"
            raise ConfigError(
                f"app {self.app.name} has no specialist for {capability}; capabilities: {known}"
            )
        request_id = await self.publish(
            specialist.requests_for(priority, self.app.routing.choose(specialist.pools)),
            value,
            key=key,
            correlation_id=correlation_id,
            settle=settle,
            headers=[
                *request_headers(specialist.replies, "test"),
                *(
                    []
                    if timeout is None
                    else [hdr.deadline_header(self.clock.millis() + int(timeout * 1000))]
                ),
            ],
        )
        if not settle:
            return request_id
        for reply in self.sent(specialist.replies):
            if reply.request_id == request_id:
                return answer(reply, specialist, self.payloads)
        raise CallTimeout(f"no answer from {capability} to request {request_id}")

    async def start(self, workflow: str, value: Record, *, workflow_id: str | None = None) -> str:
        """Start workflow ``workflow`` with ``value`` (as :meth:`streams.Client.start` does) and let
        everything settle; returns the workflow id."""
        definition = self._workflow(workflow)
        workflow_id = workflow_id or hdr.new_id()
        event = start_event(definition, value, workflow_id, self.payloads, "test", self.clock.millis())
        await self.publish(definition.events, event, key=workflow_id)
        return workflow_id

    async def signal(self, workflow: str, workflow_id: str, name: str, value: Record) -> None:
        """Send signal ``name`` with ``value`` to a workflow (as :meth:`streams.Client.signal` does)
        and settle."""
        definition = self._workflow(workflow)
        event = signal_event(definition, workflow_id, name, value, self.payloads, "test", self.clock.millis())
        await self.publish(definition.events, event, key=workflow_id)

    async def cancel(self, workflow: str, workflow_id: str, reason: str | None = None) -> None:
        """Cancel a workflow (as :meth:`streams.Client.cancel` does) and settle."""
        definition = self._workflow(workflow)
        event = cancel_event(definition, workflow_id, reason, "test", self.clock.millis())
        await self.publish(definition.events, event, key=workflow_id)

    def result(self, workflow: str, workflow_id: str) -> Any:
        """The output of a workflow that has ended; :class:`WorkflowFailed` if it failed
        (:class:`WorkflowCancelled` if it was cancelled), and :class:`CallTimeout` while it has not
        ended."""
        definition = self._workflow(workflow)
        for event in self.sent(definition.events):
            if event.workflow_id == workflow_id and event.kind in ENDINGS:
                return result_of(event, definition, self.payloads)
        raise CallTimeout(f"workflow {workflow} ({workflow_id}) has not ended")

    def journal(self, workflow: str, workflow_id: str) -> WorkflowJournal | None:
        """A workflow's journal as its engine keeps it."""
        self._workflow(workflow)
        found: WorkflowJournal | None = self.table(workflow, JOURNAL).get(workflow_id)
        return found

    def breaker(self, workflow: str, capability: str, *, partition: int = 0) -> BreakerState | None:
        """The circuit breaker of ``capability`` as workflow ``workflow``'s engine keeps it in
        ``partition`` of its events (each keeps a copy, told of the others' changes); None until a
        call or news has reached it."""
        self._workflow(workflow)
        self._agent(workflow)
        found: BreakerState | None = self._workers[workflow].tables.open(BREAKERS, partition).get(capability)
        return found

    def _workflow(self, name: str) -> WorkflowDefinition:
        definition = self.app.workflows.get(name)
        if definition is None:
            known = ", ".join(self.app.workflows) or "none"
            raise ConfigError(f"app {self.app.name} has no workflow {name}; workflows: {known}")
        return definition

    async def publish_raw(
        self,
        topic: str | Topic[Any],
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        settle: bool = True,
    ) -> None:
        """Append bytes as they are (no schema, no headers added): for poison messages and foreign clients."""
        name = topic if isinstance(topic, str) else topic.name
        self.broker.append(name, value, key, headers)
        if settle:
            await self.settle()

    async def advance(self, seconds: float) -> None:
        """Move the fake clock ``seconds`` on and settle: timers due by then fire (a workflow's
        24-hour approval timeout takes no real time)."""
        await self.clock.sleep(seconds)
        await self.settle()

    async def settle(self, within: float = 30.0) -> None:
        """Run the agents until none has anything left to handle or commit; raise an agent's failure
        (a handler that failed for good with ``dead_letter=False``). ``within``: seconds of real time
        each agent may take to finish what it has."""
        if not self._started:
            raise ConfigError("use TestApp inside `async with`")
        while True:
            for worker in self._workers.values():
                await worker.tick(self.clock.millis())
            fetched = sum(worker.fetch() for worker in self._workers.values())
            for worker in self._workers.values():
                await worker.finish(within)
            if not fetched and not any(worker.fetch_pending() for worker in self._workers.values()):
                return

    # ----------------------------------------------------------------- inspection

    def sent(self, topic: Topic[V]) -> list[V]:
        """The decoded values on ``topic``, partition by partition, in offset order."""
        return [message.value for message in self.messages(topic)]

    def messages(self, topic: Topic[Any]) -> list[Sent]:
        decode = RecordDecoder(self.registry, topic.value)
        return [
            Sent(
                m.topic,
                m.partition,
                m.offset,
                None if m.key is None else (m.key.decode() if topic.key is str else m.key),
                decode(m.value),
                hdr.as_text(m.headers),
            )
            for m in self.broker.messages(topic.name)
        ]

    def dead_letters(self, agent: str) -> list[DeadLetter]:
        declared = self._agent(agent)
        letters = []
        for message in self.broker.messages(declared.dead_letter_topic):
            headers = hdr.as_text(message.headers)
            letters.append(
                DeadLetter(
                    agent=headers.get(hdr.DLQ_AGENT, ""),
                    value=message.value,
                    key=message.key,
                    reason=headers.get(hdr.DLQ_REASON, ""),
                    error_class=headers.get(hdr.DLQ_ERROR_CLASS, ""),
                    attempts=int(headers.get(hdr.DLQ_ATTEMPTS, "0")),
                    source=f"{headers.get(hdr.DLQ_SOURCE_TOPIC)}/{headers.get(hdr.DLQ_SOURCE_PARTITION)}"
                    f"@{headers.get(hdr.DLQ_SOURCE_OFFSET)}",
                    headers=headers,
                )
            )
        return letters

    async def replay_dead_letters(self, agent: str, *, to: str | None = None) -> int:
        """As ``streams dlq replay``: send the agent's dead letters that arrived since the last replay back
        to their source topic (or ``to``), identity kept; then settle. Returns how many."""
        declared = self._agent(agent)
        replay_group = f"{declared.dead_letter_topic}.replay"
        positions = self.broker.committed(replay_group)
        replayed = 0
        moved: dict[TP, int] = {}
        for partition in range(self.broker.partitions(declared.dead_letter_topic)):
            tp = (declared.dead_letter_topic, partition)
            for message in self.broker.read(*tp, positions.get(tp, 0)):
                target, headers = replayed_letter(message.headers, tp[0], partition, message.offset, to)
                self.broker.append(target, message.value, message.key, headers)
                moved[tp] = message.offset + 1
                replayed += 1
        self.broker.commit(replay_group, moved)
        await self.settle()
        return replayed

    def committed(self, agent: str) -> dict[int, int]:
        """The agent group's committed position (next offset to read) per partition of its topic (a
        specialist's: of its ``normal`` requests)."""
        declared = self._agent(agent)
        committed = self.broker.committed(declared.group_id).items()
        return {p: o for (t, p), o in committed if t == declared.topic.name}

    def table(self, agent: str, table: Table[V]) -> dict[str | bytes, V]:
        """Every key and value of one of ``agent``'s tables, as its handlers left it."""
        self._agent(agent)
        return self._workers[agent].tables.snapshot(table)

    def stats(self, agent: str) -> WorkerStats:
        self._agent(agent)
        return self._workers[agent].stats

    def _agent(self, name: str) -> Agent[Any]:
        worker = self._workers.get(name)
        if worker is None:
            raise ConfigError(f"no agent {name} runs in this test app; running: {', '.join(self._workers)}")
        return worker.agent

    def _encoder(self, topic: Topic[Any]) -> AvroEncoder:
        encoder = self._encoders.get(topic.name)
        if encoder is None:
            encoder = AvroEncoder(self.registry, subject_for(topic.name), topic.value.avro_schema())
            self._encoders[topic.name] = encoder
        return encoder
