"""Worker metrics without a broker: the middleware's counters, the scrape-time collector, readiness and
the HTTP endpoint."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.context import Context
from streams.errors import ConfigError
from streams.events import TaskCompleted, TaskStatus, WorkerState
from streams.headers import Headers
from streams.middleware import Chain
from streams.serde.record import Record
from streams.telemetry.health import Readiness, readiness
from streams.telemetry.metrics import MetricsMiddleware, WorkerCollector
from streams.telemetry.probe import ProbeUnavailable, WorkerProbe, WorkerSnapshot
from streams.telemetry.server import TelemetryServer
from streams.topics import Topic
from streams.worker.agent_worker import WorkerStats

pytestmark = pytest.mark.unit

OUT = Topic("out", value=TaskCompleted)


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


def _ctx(
    chain: Chain, outbox: ListOutbox, *, agent: str = "a", topic: str = "in", attempt: int = 1
) -> Context:
    return Context(
        agent=agent,
        topic=topic,
        partition=0,
        offset=7,
        key="k",
        headers={"message-id": "m1"},
        timestamp_ms=0,
        attempt=attempt,
        outbox=outbox,
        on_send=chain.on_send,
    )


async def test_middleware_counts_first_attempts_latency_errors_and_sends() -> None:
    registry = CollectorRegistry()
    metrics = MetricsMiddleware(registry)
    chain = Chain([metrics])
    outbox = ListOutbox()

    async def sends_two(ctx: Context) -> None:
        for _ in range(2):
            await ctx.send(OUT, TaskCompleted(task_id="t", agent="a", status=TaskStatus.SUCCEEDED))

    ok = _ctx(chain, outbox)
    await chain.handle(ok, lambda: sends_two(ok))

    async def fails() -> None:
        raise ConnectionError("down")

    # One message that fails twice (attempts 1 and 2) then succeeds on attempt 3.
    for attempt in (1, 2):
        with pytest.raises(ConnectionError):
            await chain.handle(_ctx(chain, outbox, attempt=attempt), fails)
    retried = _ctx(chain, outbox, attempt=3)
    await chain.handle(retried, lambda: sends_two(retried))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("streams_messages_in_total", agent="a", topic="in") == 2, "retries are not new messages"
    assert value("streams_handler_seconds_count", agent="a") == 4, "every attempt is timed"
    assert value("streams_handler_errors_total", agent="a", error="builtins.ConnectionError") == 2
    assert value("streams_messages_out_total", agent="a", topic="out") == 4
    assert len(outbox.sent) == 4, "sends still go out"
    assert all(dict(h).get("message-id") for _, h in outbox.sent), "headers pass through unchanged"


def _snapshot(agent: str = "a", **changes: object) -> WorkerSnapshot:
    base = WorkerSnapshot(
        agent=agent,
        group_id=f"app.{agent}",
        worker_id="w1",
        state=WorkerState.RUNNING,
        assigned=(("in", 0), ("in", 1)),
        in_flight=3,
        paused_partitions=0,
        lag={("in", 0): 5, ("in", 1): 7},
        stats=WorkerStats(
            received=10,
            processed=8,
            retries=2,
            dead_lettered=1,
            duplicates=4,
            restored_records=1500,
            checkpoint_restores=2,
            full_restores=1,
            restore_seconds=0.25,
        ),
        failure=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class StubProbe(WorkerProbe):
    def __init__(self, snapshots: list[WorkerSnapshot] | Exception) -> None:
        super().__init__([], {})
        self.answer = snapshots

    def snapshots(self, timeout: float = 5.0) -> list[WorkerSnapshot]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_collector_reads_worker_state_when_scraped() -> None:
    registry = CollectorRegistry()
    probe = StubProbe([_snapshot("a"), _snapshot("b", paused_partitions=1, assigned=(("in", 2),), lag={})])
    registry.register(WorkerCollector(probe))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("streams_messages_received_total", agent="a") == 10
    assert value("streams_messages_processed_total", agent="a") == 8
    assert value("streams_retries_total", agent="a") == 2
    assert value("streams_dead_letters_total", agent="a") == 1
    assert value("streams_duplicates_skipped_total", agent="a") == 4
    assert value("streams_table_restored_records_total", agent="a") == 1500
    assert value("streams_table_restores_total", agent="a", source="checkpoint") == 2
    assert value("streams_table_restores_total", agent="a", source="beginning") == 1
    assert value("streams_table_restore_seconds", agent="a") == 0.25
    assert value("streams_in_flight_messages", agent="a") == 3
    assert value("streams_assigned_partitions", agent="a") == 2
    assert value("streams_paused_partitions", agent="a") == 0
    assert value("streams_paused_partitions", agent="b") == 1
    assert value("streams_consumer_lag", agent="a", topic="in", partition="1") == 7
    assert value("streams_consumer_lag", agent="b", topic="in", partition="2") is None, "unknown lag"

    probe.answer = [_snapshot("a", stats=WorkerStats(received=11))]
    assert value("streams_messages_received_total", agent="a") == 11, "read again at every scrape"


def test_an_unresponsive_loop_drops_worker_series_but_keeps_the_rest() -> None:
    registry = CollectorRegistry()
    metrics = MetricsMiddleware(registry)
    metrics.messages_in.labels("a", "in").inc()
    registry.register(WorkerCollector(StubProbe(ProbeUnavailable("busy"))))
    text = generate_latest(registry).decode()
    assert 'streams_messages_in_total{agent="a",topic="in"} 1.0' in text
    assert "streams_in_flight_messages{" not in text


@pytest.mark.parametrize(
    ("snapshots", "ready", "reason"),
    [
        ([_snapshot("a"), _snapshot("b")], True, "ready: 2 agent(s) consuming"),
        ([], False, "no agents"),
        ([_snapshot("a"), _snapshot("b", assigned=())], False, "agent b has no partitions assigned"),
        ([_snapshot("a", state=WorkerState.STARTING)], False, "agent a is starting"),
        ([_snapshot("a", state=WorkerState.DRAINING)], False, "agent a is draining"),
        ([_snapshot("a", failure="HandlerFailed: boom")], False, "agent a failed: HandlerFailed: boom"),
    ],
)
def test_ready_only_when_every_agent_runs_with_partitions(
    snapshots: list[WorkerSnapshot], ready: bool, reason: str
) -> None:
    assert readiness(snapshots) == Readiness(ready, reason)


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_endpoint_serves_metrics_health_and_readiness() -> None:
    registry = CollectorRegistry()
    MetricsMiddleware(registry).messages_out.labels("a", "out").inc(3)
    state = Readiness(False, "agent a has no partitions assigned")
    server = TelemetryServer(registry, lambda: state, port=0)
    server.start()
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        status, content_type, body = _get(f"{server.url}/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=")
        assert 'streams_messages_out_total{agent="a",topic="out"} 3.0' in body
        assert _get(f"{server.url}/health")[::2] == (200, "ok\n")
        assert _get(f"{server.url}/ready")[::2] == (503, "agent a has no partitions assigned\n")
        state = Readiness(True, "ready: 1 agent(s) consuming")
        assert _get(f"{server.url}/ready?verbose=1")[::2] == (200, "ready: 1 agent(s) consuming\n")
        assert _get(f"{server.url}/nothing")[0] == 404
    finally:
        server.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def test_a_failing_check_answers_500_and_the_endpoint_keeps_serving() -> None:
    def broken() -> Readiness:
        raise RuntimeError("probe exploded")

    server = TelemetryServer(CollectorRegistry(), broken, port=0)
    server.start()
    try:
        assert _get(f"{server.url}/ready")[::2] == (500, "RuntimeError: probe exploded\n")
        assert _get(f"{server.url}/health")[0] == 200
    finally:
        server.close()


def test_a_taken_port_is_a_config_error() -> None:
    first = TelemetryServer(CollectorRegistry(), lambda: Readiness(True, ""), port=0)
    try:
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            TelemetryServer(CollectorRegistry(), lambda: Readiness(True, ""), port=first.port)
    finally:
        first.close()
