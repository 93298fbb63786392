import inspect

import pytest

import streams
import streams.monitoring
import streams.testing

pytestmark = pytest.mark.unit

SUBMODULES = {
    "absence",
    "agent_rules",
    "aggregate",
    "detectors",
    "fleet",
    "monitor",
    "rules",
    "settings",
    "watch",
    "workflow_counts",
}


EXPECTED = [
    "App",
    "AtLeastOnce",
    "Breaker",
    "CallFailed",
    "CallTimeout",
    "CircuitOpen",
    "Client",
    "CompensationFailed",
    "ConfigError",
    "Context",
    "DataError",
    "DeadlinePassed",
    "DeserializationError",
    "ErrorKind",
    "ExactlyOnce",
    "FatalError",
    "Handoff",
    "HandoffRefused",
    "Hopping",
    "LateRecord",
    "Limits",
    "Middleware",
    "Priorities",
    "Priority",
    "Publisher",
    "Record",
    "ResourceError",
    "Retry",
    "SchemaError",
    "SchemaIncompatibleError",
    "SerializationError",
    "Session",
    "Settings",
    "Sliding",
    "StackError",
    "StateError",
    "StreamsError",
    "Table",
    "Topic",
    "TopicError",
    "TransientError",
    "TransportError",
    "Tumbling",
    "Window",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowFailed",
    "run_agents",
]


def test_the_public_surface_is_exactly_what_users_need() -> None:
    """Adding or removing a public name is a decision: change this list on purpose."""
    assert streams.__all__ == EXPECTED
    assert streams.testing.__all__ == ["DeadLetter", "FakeClock", "Sent", "TestApp"]
    assert streams.monitoring.__all__ == [
        "MAD",
        "Absence",
        "AgentWatch",
        "Bounds",
        "Detector",
        "Monitor",
        "RateOfChange",
        "Rule",
        "Sketch",
        "Summarize",
        "Threshold",
        "Verdict",
        "WatchSettings",
        "ZScore",
        "combine",
        "mean",
        "quantile",
        "rate",
        "sum_rate",
    ]
    monitoring_public = {n for n in vars(streams.monitoring) if not n.startswith("_")}
    assert monitoring_public - SUBMODULES == set(streams.monitoring.__all__)


def test_all_is_sorted_and_unique() -> None:
    assert list(streams.__all__) == sorted(set(streams.__all__))


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(streams).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(streams.__all__)


def test_every_export_resolves() -> None:
    for name in streams.__all__:
        assert getattr(streams, name) is not None
