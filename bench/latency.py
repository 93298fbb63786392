"""The latency scenario: the 3-stage pipeline under a steady offered load, end-to-end latency per message.

One row per contender, partition count and load. A load is a share of a maximum rate (``--latency-max``,
or the ``streams`` pipeline row's msg/s measured earlier in the same run at the same partition count);
every contender gets the same offered rates, so rows at one load compare side by side.

For each row:
- fresh topics; the input and final topics have ``message.timestamp.type=LogAppendTime``, so the
  broker stamps each record with the time it appended it, whatever timestamp its producer set (Quix,
  for one, copies the input's timestamp to its outputs);
- a warm-up of one message per key is preloaded before the contender starts; the load begins once all
  of its outputs are on the final topic (group joins and assignment are not measured);
- a publisher thread in this process produces ``rate x seconds`` messages at a fixed rate (in ticks of
  at most 5 ms), noting the moment each is handed to the producer (idempotent, acks=all, linger 1 ms,
  lz4);
- end-to-end latency of a message = the LogAppendTime of its first output on the final topic minus the
  LogAppendTime of its input (the input topic is stamped by the broker too and read back after the
  row): the time from the input being in Kafka to the result being in Kafka, on the broker's clock.
  The output is matched to its input by the task id, the first field of the value;
- "from send" is measured from the moment the publisher handed the input to its producer instead: it
  adds the load generator's own delay (producer batching, the harness process waiting for a CPU on a
  busy machine);
- the row stops by itself: when every output has arrived, or ``max(30 s, seconds)`` after the load
  ended (then the row says how many were missing, and its percentiles cover only those that arrived);
- CPU per message is the contender's CPU from the start of the load until the last output (or the
  deadline); peak RSS its high-water mark.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table

from bench.harness import Harness, RunSpec, counter_consumer, cpu_seconds, peak_rss_mb, tail
from bench.scenarios import KEYS
from streams.serde.codec import AvroEncoder
from streams.serde.registry import subject_for

_TICK = 0.005  # the publisher's longest sleep between sends


@dataclass
class LatencyResult:
    contender: str
    partitions: int
    load: int  # percent of the maximum rate
    target: float  # offered msg/s asked for
    messages: int
    status: str = "ok"  # ok | behind: ... | failed: ...
    offered: float | None = None  # msg/s the publisher reached
    latencies_ms: list[int] = field(default_factory=list)  # input's append time to the output's
    from_send_ms: list[int] = field(default_factory=list)  # the publisher's send time to the output's
    cpu_seconds: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""

    def percentile(self, share: float, of: list[int] | None = None) -> float | None:
        """Nearest-rank percentile of the latencies (or of ``of``), in ms."""
        values = self.latencies_ms if of is None else of
        if not values:
            return None
        ordered = sorted(values)
        return float(ordered[max(0, math.ceil(share * len(ordered)) - 1)])

    @property
    def cpu_per_million(self) -> float | None:
        if self.cpu_seconds is None or not self.latencies_ms:
            return None
        return self.cpu_seconds / len(self.latencies_ms) * 1_000_000


def task_index(value: bytes | None) -> int:
    """``i`` of ``task-<i>``: a TaskCompleted's first field, after the 5-byte wire header."""
    if value is None or len(value) < 7:
        return -1
    length = shift = 0
    position = 5
    while True:  # Avro string length: a zigzag varint
        byte = value[position]
        position += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    length = (length >> 1) ^ -(length & 1)
    text = value[position : position + length]
    return int(text[5:]) if text.startswith(b"task-") else -1


class _Publisher(threading.Thread):
    """Produces ``values`` at ``rate`` msg/s from index ``first`` on; ``sent[i]`` is the record timestamp
    (epoch ms) given to message ``i``."""

    def __init__(
        self, bootstrap: str, topic: str, values: list[tuple[bytes, bytes]], first: int, rate: float
    ) -> None:
        super().__init__(daemon=True, name="publisher")
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "compression.type": "lz4",
            }
        )
        self.topic = topic
        self.values = values
        self.first = first
        self.rate = rate
        self.sent: list[int] = [0] * len(values)
        self.started = 0.0
        self.ended = 0.0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the row
            self.error = exc

    def _run(self) -> None:
        produce, poll, topic = self.producer.produce, self.producer.poll, self.topic
        count = len(self.values) - self.first
        self.started = start = time.monotonic()
        done = 0
        while done < count and not self.stopping.is_set():
            due = min(count, int((time.monotonic() - start) * self.rate) + 1)
            while done < due:
                i = self.first + done
                key, value = self.values[i]
                stamp = int(time.time() * 1000)
                try:
                    produce(topic, value, key, timestamp=stamp)
                except BufferError:
                    poll(0.01)
                    continue
                self.sent[i] = stamp
                done += 1
            poll(0)
            wait = start + done / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, _TICK))
        self.ended = time.monotonic()
        self.producer.flush(60)


class LatencyBench:
    def __init__(self, harness: Harness, seconds: float) -> None:
        self.harness = harness
        self.seconds = seconds

    def run(self, spec: RunSpec, rate: float, load: int) -> LatencyResult:
        """One row: ``spec.contender`` at ``rate`` msg/s for ``self.seconds`` (``spec.messages`` is
        ignored: the load decides the count)."""
        harness = self.harness
        count = max(1, round(rate * self.seconds))
        result = LatencyResult(spec.contender, spec.partitions, load, rate, count)
        scenario = harness.scenarios[spec.scenario]
        append_time = {"message.timestamp.type": "LogAppendTime"}
        topics, config_path = harness.prepare(spec, {0: append_time, -1: append_time})
        final = topics[-1]
        encoder = AvroEncoder(harness.registry, subject_for(topics[0]), scenario.source.avro_schema())
        values = [(key.encode(), encoder(value)) for key, value in scenario.inputs(KEYS + count)]
        harness.preload(scenario, topics[0], KEYS)  # the warm-up: task-0 .. task-999, one per key
        publisher = _Publisher(harness.bootstrap, topics[0], values, KEYS, rate)
        counter = counter_consumer(harness.bootstrap, final, spec.partitions)
        log_path = config_path.with_suffix(".log")
        outputs: dict[int, int] = {}
        stopped = True
        try:
            with log_path.open("w", encoding="utf-8") as log:
                child, _first, reader, profiler = harness.launch(spec, config_path, log)
                try:
                    outputs = self._measure(child.pid, child.poll, counter, publisher, result)
                finally:
                    publisher.stopping.set()
                    if child.poll() is None:
                        result.peak_rss_mb = peak_rss_mb(child.pid)
                    stopped = harness.stop(child, profiler)
                reader.join(timeout=5)
        finally:
            counter.close()
            if publisher.ident is not None:
                publisher.join(timeout=60)
        inputs = _append_times(harness.bootstrap, topics[0], spec.partitions)
        self._summarise(result, publisher, outputs, inputs)
        _write_timeline(config_path.with_suffix(".latencies.csv"), outputs, inputs)
        if not stopped:
            result.note = f"{result.note}; did not stop within 30 s of SIGTERM (killed)".lstrip("; ")
        if result.status != "ok":
            result.note = f"{result.note}; log: {tail(log_path)}".lstrip("; ")
        return result

    def _measure(
        self,
        pid: int,
        poll: Callable[[], int | None],
        counter: Consumer,
        publisher: _Publisher,
        result: LatencyResult,
    ) -> dict[int, int]:
        """Wait for the warm-up, run the load, collect task index -> first append time (ms)."""
        outputs: dict[int, int] = {}
        deadline = time.monotonic() + self.harness.timeout
        while sum(1 for i in outputs if i < KEYS) < KEYS:
            if poll() is not None or time.monotonic() > deadline or result.status != "ok":
                result.status = f"failed: warm-up: {len(outputs)} of {KEYS} outputs; {result.status}" + (
                    " (contender exited)" if poll() is not None else ""
                )
                return outputs
            _collect(counter, outputs, result)
        cpu_start = cpu_seconds(pid)
        publisher.start()
        wanted = KEYS + result.messages
        drain = max(30.0, self.seconds)
        while True:
            _collect(counter, outputs, result)
            if len(outputs) >= wanted:
                break
            if poll() is not None:
                result.status = f"failed: exited after {len(outputs) - KEYS} of {result.messages} outputs"
                break
            if publisher.ended and time.monotonic() > publisher.ended + drain:
                result.status = (
                    f"behind: {len(outputs) - KEYS:,} of {result.messages:,} outputs "
                    f"{drain:.0f} s after the load ended"
                )
                break
            if publisher.error is not None:
                result.status = f"failed: publisher: {publisher.error!r}"
                break
        if poll() is None:
            result.cpu_seconds = cpu_seconds(pid) - cpu_start
        return outputs

    @staticmethod
    def _summarise(
        result: LatencyResult, publisher: _Publisher, outputs: dict[int, int], inputs: dict[int, int]
    ) -> None:
        if publisher.ended > publisher.started and result.messages > 1:
            result.offered = result.messages / (publisher.ended - publisher.started)
        sent = publisher.sent
        result.latencies_ms = [at - inputs[i] for i, at in outputs.items() if i >= KEYS and i in inputs]
        result.from_send_ms = [at - sent[i] for i, at in outputs.items() if i >= KEYS and sent[i]]


def _write_timeline(path: Path, outputs: dict[int, int], inputs: dict[int, int]) -> None:
    """Each measured message's input append time and latency (ms), in input order, beside the row's
    log: to see whether slow messages come in bursts (a stall) or spread evenly (a queue)."""
    with path.open("w", encoding="utf-8") as out:
        out.write("task,input_ms,latency_ms\n")
        for i, at in sorted(outputs.items(), key=lambda pair: inputs.get(pair[0], 0)):
            if i >= KEYS and i in inputs:
                out.write(f"{i},{inputs[i]},{at - inputs[i]}\n")


def _append_times(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Task index -> LogAppendTime (ms) of every input on ``topic``, read back after the row."""
    consumer = counter_consumer(bootstrap, topic, partitions)
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)
    }
    times: dict[int, int] = {}
    done: set[int] = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + 60
    try:
        while len(done) < partitions and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                if message.error() is not None:
                    continue
                times.setdefault(task_index(message.value()), message.timestamp()[1])
                partition = message.partition() or 0
                if (message.offset() or 0) + 1 >= ends[partition]:
                    done.add(partition)
    finally:
        consumer.close()
    return times


def _collect(counter: Consumer, outputs: dict[int, int], result: LatencyResult) -> None:
    """Consume what is there: the first output of each task (a redelivered duplicate keeps the first)."""
    for message in counter.consume(num_messages=10_000, timeout=0.02):
        if message.error() is not None:
            continue
        kind, stamp = message.timestamp()
        if kind != TIMESTAMP_LOG_APPEND_TIME:
            result.status = "failed: the final topic's records are not stamped with LogAppendTime"
        index = task_index(message.value())
        if index >= 0:
            outputs.setdefault(index, stamp)


# ----------------------------------------------------------------- the table

HEADERS = [
    "partitions",
    "load",
    "contender",
    "offered msg/s",
    "messages",
    "p50 ms",
    "p99 ms",
    "max ms",
    "from send p50/p99 ms",
    "CPU-s / 1M msgs",
    "peak RSS MB",
    "notes",
]


def rows(results: list[LatencyResult]) -> list[list[str]]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    out = []
    for r in results:
        offered = f"{r.target:,.0f}" + (f" ({r.offered:,.0f})" if r.offered else "")
        note = r.note if r.status == "ok" else f"{r.status}; {r.note}".rstrip("; ")
        out.append(
            [
                str(r.partitions),
                f"{r.load}%",
                r.contender,
                offered,
                f"{r.messages:,}",
                ms(r.percentile(0.5)),
                ms(r.percentile(0.99)),
                ms(r.percentile(1.0)),
                f"{ms(r.percentile(0.5, r.from_send_ms))} / {ms(r.percentile(0.99, r.from_send_ms))}",
                "-" if r.cpu_per_million is None else f"{r.cpu_per_million:,.0f}",
                "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}",
                note[-300:],
            ]
        )
    return out


def show(console: Console, results: list[LatencyResult], *, as_markdown: bool) -> None:
    table = Table(
        title="latency: 3-stage pipeline under a steady offered load, end to end "
        "(the input's LogAppendTime to the final output's)"
    )
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("contender", "notes") else "right")
    for row in rows(results):
        table.add_row(*row)
    console.print(table)
    if as_markdown:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * len(HEADERS)) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows(results)]
        print("\n".join(lines))
