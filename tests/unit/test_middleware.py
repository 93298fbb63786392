import pytest

from streams.context import Context
from streams.events import TaskCompleted, TaskStatus
from streams.headers import Headers
from streams.middleware import Chain, Middleware
from streams.serde.record import Record
from streams.topics import Topic

pytestmark = pytest.mark.unit


class Recorder(Middleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def handle(self, ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
        self.log.append(f"{self.name} before")
        try:
            await call_next()
        finally:
            self.log.append(f"{self.name} after")

    def on_send(self, ctx: Context, topic: str, headers: Headers) -> Headers:
        return [*headers, (self.name, topic.encode())]


class ListOutbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Headers]] = []

    async def put(  # type: ignore[type-arg]
        self,
        topic: Topic,
        value: Record,
        key: str | bytes | None,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        self.sent.append((topic.name, headers))


def _ctx(chain: Chain, outbox: ListOutbox) -> Context:
    return Context(
        agent="a",
        topic="in",
        partition=0,
        offset=7,
        key="k",
        headers={"message-id": "m1", "correlation-id": "c1"},
        timestamp_ms=0,
        attempt=1,
        outbox=outbox,
        on_send=chain.on_send,
    )


async def test_handle_runs_as_an_onion_around_the_handler_and_errors_pass_through() -> None:
    log: list[str] = []
    chain = Chain([Recorder("outer", log), Recorder("inner", log)])

    async def handler() -> None:
        log.append("handler")

    await chain.handle(_ctx(chain, ListOutbox()), handler)
    assert log == ["outer before", "inner before", "handler", "inner after", "outer after"]

    async def failing() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await chain.handle(_ctx(chain, ListOutbox()), failing)


async def test_sends_pass_through_every_middleware_in_order() -> None:
    outbox = ListOutbox()
    chain = Chain([Recorder("first", []), Recorder("second", [])])
    out = Topic("out", value=TaskCompleted)
    await _ctx(chain, outbox).send(out, TaskCompleted(task_id="t", agent="a", status=TaskStatus.SUCCEEDED))
    [(topic, headers)] = outbox.sent
    assert topic == "out"
    names = [k for k, _ in headers]
    assert names[-2:] == ["first", "second"]
    assert dict(headers)["causation-id"] == b"m1"
    assert dict(headers)["correlation-id"] == b"c1"


@pytest.mark.parametrize("propagate", [True, False])
async def test_trace_context_flows_to_outputs_without_any_tracer(propagate: bool) -> None:
    """Propagate-only: with no SDK installed, outputs still carry the input's W3C trace context."""
    outbox = ListOutbox()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ctx = Context(
        agent="a",
        topic="in",
        partition=0,
        offset=1,
        key="k",
        headers={"message-id": "m1", "traceparent": parent, "tracestate": "vendor=1"},
        timestamp_ms=0,
        attempt=1,
        outbox=outbox,
        propagate_trace=propagate,
    )
    await ctx.send(
        Topic("out", value=TaskCompleted), TaskCompleted(task_id="t", agent="a", status=TaskStatus.SUCCEEDED)
    )
    sent = dict(outbox.sent[0][1])
    if propagate:
        assert sent["traceparent"] == parent.encode()
        assert sent["tracestate"] == b"vendor=1"
    else:
        assert "traceparent" not in sent


async def test_messages_without_a_message_id_are_named_by_their_position() -> None:
    """Messages from other clients carry no identity header: their position is their stable id, and
    what a handler sends names it as cause and correlation."""
    outbox = ListOutbox()
    ctx = Context(
        agent="a",
        topic="in",
        partition=3,
        offset=41,
        key="k",
        headers={},
        timestamp_ms=0,
        attempt=1,
        outbox=outbox,
    )
    assert ctx.message_id == "in/3@41"
    assert ctx.correlation_id == "in/3@41"
    results = Topic("out", value=TaskCompleted)
    await ctx.send(results, TaskCompleted(task_id="t", agent="a", status=TaskStatus.SUCCEEDED))
    [(_, headers)] = outbox.sent
    sent = dict(headers)
    assert sent["causation-id"] == b"in/3@41"
    assert sent["correlation-id"] == b"in/3@41"
