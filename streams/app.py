"""The application object: a name, the topics it declares and the agents that consume them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from streams.agent import Agent, Handler, agent_options
from streams.config import Settings
from streams.errors import ConfigError
from streams.middleware import Middleware
from streams.serde.record import Record
from streams.topics import Topic

V = TypeVar("V", bound=Record)


class App:
    """A named set of topic declarations sharing one :class:`Settings`."""

    def __init__(
        self, name: str, settings: Settings | None = None, middleware: Sequence[Middleware] = ()
    ) -> None:
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"illegal app name {name!r}: use letters, digits, '.', '_', '-'")
        self.name = name
        self.settings = settings or Settings()
        self.topics: dict[str, Topic[Any]] = {}
        self.agents: dict[str, Agent[Any]] = {}
        self.middleware: list[Middleware] = list(middleware)

    def topic(self, name: str, *, value: type[V], **options: Any) -> Topic[V]:
        """Declare a typed topic; declaring the same name twice must declare the same topic."""
        declared = Topic(name=name, value=value, **options)
        existing = self.topics.get(name)
        if existing is not None and existing != declared:
            raise ConfigError(f"topic {name} is declared twice with different settings")
        self.topics[name] = declared
        return declared

    def agent(
        self, topic: Topic[V], *, name: str | None = None, **options: Any
    ) -> Callable[[Handler[V]], Handler[V]]:
        """Register an async handler as an agent of ``topic`` (options: see :class:`streams.agent.Agent`).

        The decorated function is returned unchanged, so it stays directly callable in unit tests.
        """
        if topic.name not in self.topics:
            raise ConfigError(f"topic {topic.name} is not declared by app {self.name}; use app.topic() first")

        def register(handler: Handler[V]) -> Handler[V]:
            agent_name = name or handler.__name__
            if agent_name in self.agents:
                raise ConfigError(f"app {self.name} already has an agent named {agent_name}")
            self.agents[agent_name] = Agent(
                app=self.name, name=agent_name, topic=topic, handler=handler, **agent_options(**options)
            )
            return handler

        return register
