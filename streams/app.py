"""The application object: a name and the topics it declares (agents attach here as well)."""

from __future__ import annotations

from typing import Any, TypeVar

from streams.config import Settings
from streams.errors import ConfigError
from streams.serde.record import Record
from streams.topics import Topic

V = TypeVar("V", bound=Record)


class App:
    """A named set of topic declarations sharing one :class:`Settings`."""

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"illegal app name {name!r}: use letters, digits, '.', '_', '-'")
        self.name = name
        self.settings = settings or Settings()
        self.topics: dict[str, Topic[Any]] = {}

    def topic(self, name: str, *, value: type[V], **options: Any) -> Topic[V]:
        """Declare a typed topic; declaring the same name twice must declare the same topic."""
        declared = Topic(name=name, value=value, **options)
        existing = self.topics.get(name)
        if existing is not None and existing != declared:
            raise ConfigError(f"topic {name} is declared twice with different settings")
        self.topics[name] = declared
        return declared
