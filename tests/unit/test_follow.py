import pytest

from streams.telemetry.follow import Hop, causal_order

pytestmark = pytest.mark.unit


def hop(topic: str, ts: int, mid: str | None, cause: str | None, reason: str | None = None) -> Hop:
    return Hop(
        topic=topic,
        partition=0,
        offset=ts,
        timestamp_ms=ts,
        key="k",
        message_id=mid,
        causation_id=cause,
        sent_by=None,
        dead_letter_reason=reason,
    )


def test_causal_order_nests_effects_under_causes_with_latency() -> None:
    hops = [
        hop("done", 40, "m3", "m2"),
        hop("tasks", 10, "m1", None),
        hop("dlq", 35, "m2b", None, reason="boom"),
        hop("planned", 20, "m2", "m1"),
        hop("planned", 25, "m2b", "m1"),
    ]
    ordered = causal_order(hops)
    assert [(h.topic, h.depth) for h in ordered] == [
        ("tasks", 0),
        ("planned", 1),
        ("done", 2),
        ("planned", 1),
        ("dlq", 2),
    ]
    assert [h.latency_ms for h in ordered] == [None, 10, 20, 15, 10]


def test_unrelated_messages_are_roots_in_time_order() -> None:
    ordered = causal_order([hop("b", 2, "x", "missing"), hop("a", 1, "y", None)])
    assert [h.topic for h in ordered] == ["a", "b"]
    assert all(h.depth == 0 for h in ordered)
