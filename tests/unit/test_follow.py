import pytest

from streams.telemetry.follow import Hop, causal_order, hop_of

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


class _Message:
    """The parts of a confluent_kafka.Message the scan reads."""

    def __init__(self, headers: list[tuple[str, bytes]]) -> None:
        self._headers = headers

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def key(self) -> bytes:
        return b"k1"

    def topic(self) -> str:
        return "app.enrich.dlq"

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return 7

    def timestamp(self) -> tuple[int, int]:
        return (1, 1234)


def test_a_dead_letter_is_sent_by_the_agent_that_dead_lettered_it() -> None:
    # The dead letter keeps the failed message's headers: sent-by names the stage before (plan).
    headers = [
        ("message-id", b"m2"),
        ("correlation-id", b"case"),
        ("causation-id", b"m1"),
        ("sent-by", b"plan"),
        ("dlq-reason", b"boom"),
        ("dlq-agent", b"enrich"),
    ]
    found = hop_of(_Message(headers), "case")
    assert found is not None
    assert found.sent_by == "enrich"
    assert found.dead_letter_reason == "boom"
    assert (found.topic, found.partition, found.offset, found.key) == ("app.enrich.dlq", 1, 7, "k1")


def test_an_ordinary_message_is_sent_by_its_sent_by_header() -> None:
    headers = [("message-id", b"m2"), ("correlation-id", b"case"), ("sent-by", b"plan")]
    found = hop_of(_Message(headers), "case")
    assert found is not None and found.sent_by == "plan" and found.dead_letter_reason is None
    assert hop_of(_Message(headers), "other-case") is None
