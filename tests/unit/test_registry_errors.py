import socket

import pytest

from streams.errors import SchemaError
from streams.serde.registry import ConfluentRegistry

pytestmark = pytest.mark.unit


def test_an_unreachable_registry_is_not_said_to_have_answered() -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        registry = ConfluentRegistry({"url": url, "max.retries": 0})
        with pytest.raises(SchemaError) as caught:
            registry.schema_by_id(1)
        registry.close()
    message = str(caught.value)
    assert f"cannot reach the registry at {url}" in message
    assert "answered" not in message
    assert caught.value.retriable
