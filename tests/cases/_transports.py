"""One test-facing interface over two transports: the in-memory twin (TestApp) and the real broker.

Behavioural cases are written once against :class:`Transport` and run on both, so the twin cannot
drift from what the worker does on Kafka.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from streams import App, Publisher, Settings, Topic
from streams import headers as hdr
from streams.admin import TopicAdmin
from streams.serde.record import Record
from streams.serde.registry import ConfluentRegistry
from streams.tail import tail
from streams.testing import TestApp
from streams.worker.deadletter import replay
from tests.integration._agents import eventually, running
from tests.integration._kafka import message_count, produce_raw


@dataclass(frozen=True)
class Seen:
    """A message read back from a topic: key, decoded value (a dict) or raw bytes, headers as text."""

    key: str | None
    value: Any
    headers: dict[str, str]


class Transport(Protocol):
    name: str

    def app(self, base: str) -> App: ...

    def topic_name(self, suffix: str) -> str: ...

    def run(self, app: App) -> Any: ...  # async context manager

    async def publish(self, topic: Topic[Any], items: Sequence[tuple[str, Record]]) -> list[str]: ...

    async def publish_copy(self, topic: Topic[Any], key: str, value: Record, message_id: str) -> None: ...

    async def publish_raw(self, topic: Topic[Any], value: bytes, key: bytes) -> None: ...

    async def until(self, predicate: Callable[[], bool], what: str) -> None: ...

    async def read(self, topic: str, count: int) -> list[Seen]: ...

    async def replay(self, app: App, agent: str) -> int: ...


class Twin:
    name = "twin"

    def __init__(self) -> None:
        self._test: TestApp | None = None

    def app(self, base: str) -> App:
        return App(base)

    def topic_name(self, suffix: str) -> str:
        return f"cases.{suffix}"

    @asynccontextmanager
    async def run(self, app: App) -> AsyncIterator[None]:
        async with TestApp(app) as test:
            self._test = test
            yield

    async def publish(self, topic: Topic[Any], items: Sequence[tuple[str, Record]]) -> list[str]:
        test = self._require()
        return [await test.publish(topic, value, key=key, settle=False) for key, value in items]

    async def publish_copy(self, topic: Topic[Any], key: str, value: Record, message_id: str) -> None:
        await self._require().publish(topic, value, key=key, message_id=message_id, settle=False)

    async def publish_raw(self, topic: Topic[Any], value: bytes, key: bytes) -> None:
        await self._require().publish_raw(topic, value, key=key, settle=False)

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        await self._require().settle()
        assert predicate(), f"after settling, still not true: {what}"

    async def read(self, topic: str, count: int) -> list[Seen]:
        test = self._require()
        await test.settle()
        declared = test.app.topics.get(topic) or _changelog(test.app, topic)
        if declared is not None:
            seen = [
                Seen(_text(m.key), m.value.model_dump(mode="json"), m.headers)
                for m in test.messages(declared)
            ]
        else:  # dead letters: raw bytes
            seen = [Seen(_text(m.key), m.value, hdr.as_text(m.headers)) for m in test.broker.messages(topic)]
        assert len(seen) >= count, f"{len(seen)} of {count} messages on {topic}"
        return seen

    async def replay(self, app: App, agent: str) -> int:
        return await self._require().replay_dead_letters(agent)

    def _require(self) -> TestApp:
        assert self._test is not None, "use the transport inside `async with transport.run(app)`"
        return self._test


class Kafka:
    name = "kafka"

    def __init__(self, settings: Settings, registry: ConfluentRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._run_id = uuid.uuid4().hex[:8]

    def app(self, base: str) -> App:
        return App(f"{base}-{self._run_id}", self._settings)

    def topic_name(self, suffix: str) -> str:
        return f"cases.{suffix}.{self._run_id}"

    @asynccontextmanager
    async def run(self, app: App) -> AsyncIterator[None]:
        TopicAdmin(self._settings, self._registry).apply(list(app.topics.values()))
        self._app = app
        async with running(app):
            yield

    async def publish(self, topic: Topic[Any], items: Sequence[tuple[str, Record]]) -> list[str]:
        with Publisher(self._settings, self._registry) as publisher:
            return [publisher.publish(topic, value, key=key) for key, value in items]

    async def publish_copy(self, topic: Topic[Any], key: str, value: Record, message_id: str) -> None:
        with Publisher(self._settings, self._registry) as publisher:
            publisher.publish(topic, value, key=key, message_id=message_id)

    async def publish_raw(self, topic: Topic[Any], value: bytes, key: bytes) -> None:
        produce_raw(self._settings, topic.name, value, key=key)

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        await eventually(predicate, within=60, what=what)

    async def read(self, topic: str, count: int) -> list[Seen]:
        deadline = time.monotonic() + 60
        while message_count(self._settings, topic) < count:
            assert time.monotonic() < deadline, f"fewer than {count} messages on {topic} after 60s"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # anything extra (a duplicate) would be there now
        found = tail(self._settings, self._registry, topic, from_beginning=True, idle_timeout=3)
        return [Seen(m.key, m.value, dict(m.headers)) for m in found]

    async def replay(self, app: App, agent: str) -> int:
        topic = app.agents[agent].dead_letter_topic
        report = await asyncio.to_thread(replay, self._settings, topic)
        return report.replayed


def _text(key: str | bytes | None) -> str | None:
    return key.decode(errors="replace") if isinstance(key, bytes) else key


def _changelog(app: App, name: str) -> Topic[Any] | None:
    """The table changelog called ``name`` (changelogs are the agents', not among the app's topics)."""
    for agent in app.agents.values():
        for table in agent.tables:
            if agent.changelog(table).name == name:
                return agent.changelog(table)
    return None
