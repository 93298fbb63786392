"""Shared fixtures. The real broker and registry start once per test session, only if a test needs them.

With KAFKA_BOOTSTRAP_SERVERS set, tests use that cluster (and SCHEMA_REGISTRY_URL) and start nothing.
A stack that was already running before the session is left running afterwards.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from streams.config import Settings
from streams.serde.registry import ConfluentRegistry


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield Settings()
        return
    from streams.stack import LocalStack

    stack = LocalStack()
    started = stack.up(timeout=300.0, progress=lambda line: print(f"[stack] {line}", flush=True))
    try:
        yield Settings(
            kafka_bootstrap_servers=stack.bootstrap_servers, schema_registry_url=stack.registry_url
        )
    finally:
        if started:
            stack.down()


@pytest.fixture(scope="session")
def registry(settings: Settings) -> Iterator[ConfluentRegistry]:
    client = ConfluentRegistry(settings.registry_config())
    yield client
    client.close()


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test (or earlier run) uses."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:60]
    return f"test.{base}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def producer_configs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """The configs of the producers built while the test runs (none of them reaches a broker)."""
    from streams.transport import clients

    configs: list[dict[str, object]] = []

    class Recorded:
        def __init__(self, config: dict[str, object], on_fatal: object = None) -> None:
            configs.append(config)

        def close(self, timeout: float) -> None:
            pass

    monkeypatch.setattr(clients, "AsyncProducer", Recorded)
    return configs
