"""The schema registry seen through a four-method interface, with a real and an in-memory implementation.

Owns: registering and looking up schemas by subject and id, and mapping registry failures to
:mod:`streams.errors`. The real implementation speaks the Confluent API (Apicurio serves it at
``/apis/ccompat/v7``) through confluent-kafka's client; :class:`InMemoryRegistry` is its twin for unit
tests and has no compatibility rules.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from streams.errors import SchemaError, SchemaIncompatibleError
from streams.serde.schema import SchemaJSON, canonical_text


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP client's error base class: confluent-kafka's HTTP layer changed package between releases."""
    for name in ("httpx2", "httpx"):
        try:
            return (importlib.import_module(name).HTTPError,)
        except (ImportError, AttributeError):
            continue
    return ()


_HTTPError = _transport_errors()

COMPATIBILITY_LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)


@dataclass(frozen=True)
class RegisteredSchema:
    schema_id: int
    version: int
    schema: SchemaJSON


class SchemaRegistry(Protocol):
    """What the serde layer needs of a registry."""

    def register(self, subject: str, schema: SchemaJSON) -> int:
        """Register (or find) ``schema`` under ``subject``; returns its id. Raises SchemaIncompatibleError."""

    def schema_by_id(self, schema_id: int) -> SchemaJSON:
        """The writer schema of a message. Raises SchemaError when the id is unknown."""

    def latest(self, subject: str) -> RegisteredSchema | None:
        """The newest version under ``subject``, or None when the subject does not exist."""

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        """Set the compatibility rule of one subject, or the global default when ``subject`` is None."""

    def close(self) -> None:
        """Release connections."""


def subject_for(topic: str, *, key: bool = False) -> str:
    """Confluent's TopicNameStrategy: one subject per topic and side."""
    return f"{topic}-{'key' if key else 'value'}"


class ConfluentRegistry:
    """A registry reached over the Confluent REST API. Lookups are cached by the underlying client."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._url = config.get("url", "?")
        self._client = SchemaRegistryClient(config)

    def register(self, subject: str, schema: SchemaJSON) -> int:
        text = canonical_text(schema)
        try:
            return int(self._client.register_schema(subject, Schema(text, "AVRO")))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise SchemaIncompatibleError(
                    f"schema for subject {subject!r} is incompatible with the registered versions "
                    f"under the subject's compatibility rule: {exc.error_message}"
                ) from exc
            raise self._error(f"cannot register schema under {subject!r}", exc) from exc
        except _HTTPError as exc:
            raise self._error(f"cannot register schema under {subject!r}", exc) from exc

    def schema_by_id(self, schema_id: int) -> SchemaJSON:
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SchemaError(f"schema id {schema_id} is unknown to the registry at {self._url}") from exc
            raise self._error(f"cannot fetch schema id {schema_id}", exc) from exc
        except _HTTPError as exc:
            raise self._error(f"cannot fetch schema id {schema_id}", exc) from exc
        if schema.schema_str is None:
            raise SchemaError(f"the registry returned no text for schema id {schema_id}")
        return _loads(schema.schema_str)

    def latest(self, subject: str) -> RegisteredSchema | None:
        try:
            registered = self._client.get_latest_version(subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise self._error(f"cannot look up subject {subject!r}", exc) from exc
        except _HTTPError as exc:
            raise self._error(f"cannot look up subject {subject!r}", exc) from exc
        if registered.schema_id is None or registered.version is None or registered.schema.schema_str is None:
            raise SchemaError(f"the registry returned an incomplete answer for subject {subject!r}")
        return RegisteredSchema(
            schema_id=registered.schema_id,
            version=registered.version,
            schema=_loads(registered.schema.schema_str),
        )

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        if level not in COMPATIBILITY_LEVELS:
            raise SchemaError(f"unknown compatibility level {level!r}; use one of {COMPATIBILITY_LEVELS}")
        try:
            self._client.set_compatibility(subject_name=subject, level=level)
        except SchemaRegistryError as exc:
            raise self._error("cannot set compatibility", exc) from exc
        except _HTTPError as exc:
            raise self._error("cannot set compatibility", exc) from exc

    def close(self) -> None:
        self._client.close()

    def _error(self, what: str, exc: Exception) -> SchemaError:
        status = getattr(exc, "http_status_code", None)
        if isinstance(exc, SchemaRegistryError) and status is not None and status > 0:
            error = SchemaError(f"{what}: registry at {self._url} answered {status}: {exc}")
        else:  # no HTTP answer at all: refused, timed out, name not resolved
            error = SchemaError(f"{what}: cannot reach the registry at {self._url}: {exc}")
        # A registry that cannot be reached may come back; a 4xx answer will not change.
        error.retriable = status is None or status <= 0 or status >= 500
        return error


class InMemoryRegistry:
    """A registry in a dict, for unit tests: same interface, ids from 1, no compatibility rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, str] = {}
        self._ids_by_text: dict[str, int] = {}
        self._subjects: dict[str, list[int]] = {}
        self.compatibility: dict[str | None, str] = {None: "BACKWARD"}

    def register(self, subject: str, schema: SchemaJSON) -> int:
        text = canonical_text(schema)
        with self._lock:
            schema_id = self._ids_by_text.get(text)
            if schema_id is None:
                schema_id = len(self._by_id) + 1
                self._by_id[schema_id] = text
                self._ids_by_text[text] = schema_id
            versions = self._subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def schema_by_id(self, schema_id: int) -> SchemaJSON:
        with self._lock:
            text = self._by_id.get(schema_id)
        if text is None:
            raise SchemaError(f"schema id {schema_id} is unknown to the registry")
        return _loads(text)

    def latest(self, subject: str) -> RegisteredSchema | None:
        with self._lock:
            versions = self._subjects.get(subject)
            if not versions:
                return None
            schema_id = versions[-1]
            return RegisteredSchema(schema_id, len(versions), _loads(self._by_id[schema_id]))

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        if level not in COMPATIBILITY_LEVELS:
            raise SchemaError(f"unknown compatibility level {level!r}")
        self.compatibility[subject] = level

    def close(self) -> None:
        """Nothing to release."""


def _loads(text: str) -> SchemaJSON:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SchemaError("the registry returned a schema that is not an Avro record")
    return value
