"""The monitoring pipeline: its throughput, and the delay from an anomaly to its alert.

    python -m bench.monitoring                          # both parts, about a minute
    python -m bench.monitoring --samples 20000 --series 1000 --rate 500 --seconds 20

The pipeline is what a user would write (:func:`build`): on one topic of ``MetricSample`` (key: the
series), a 10-second ``Summarize`` window per series and a ``Monitor`` with one rule, ``spike``
(``ZScore(threshold=5, min_std=0.5)``), whose alert agent sends ``OPEN`` / ``RESOLVED`` alerts. All
three agents (window, detector, alerts) run exactly-once (the defaults) in one worker process, started
as ``python -m bench.monitoring --worker <app>``; heartbeats are off.

1. **Throughput.** N samples over S series (1 s apart in event time, 21 °C with 0.3 °C of noise) are
   preloaded; every tenth series spikes to 45 °C once, three quarters of the way through, which makes
   one ``OPEN`` and one ``RESOLVED`` alert. The clock starts when the detector reads its first sample
   (the worker prints ``FIRST <time>``) and stops when both the window's and the detector's groups have
   committed all N samples and every expected alert is on the alert topic (read_committed). CPU is the
   worker process's (all threads, from /proc) over that window.
2. **Delay.** A fresh pipeline; samples are published at a steady rate over fewer series (so each
   series passes the detector's warm-up), and from the 3rd second one spike a second goes to a random
   series. A read_committed consumer reads the alerts; each spike's delay is the time its ``OPEN``
   alert was received minus the time the spike was handed to the producer (and, second, the alert
   record's timestamp minus that time).

Everything created (topics, groups, subjects) carries the run's prefix and is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.harness import REPO, Harness, cpu_seconds, peak_rss_mb, stop_process
from streams import App, ExactlyOnce, Publisher, Settings, Tumbling
from streams.events import Alert, AlertStatus, MetricSample, WindowSummary
from streams.monitoring import Monitor, Rule, Summarize, ZScore
from streams.runner import AgentRunner, prepare_topics
from streams.serde.codec import RecordDecoder
from streams.serde.registry import ConfluentRegistry
from streams.telemetry.config import TelemetryConfig
from streams.timestamps import epoch_millis

SPIKE = 45.0


def build(name: str, on_sample: Callable[[], None] | None = None) -> App:
    """The pipeline under test, as app ``name``. ``on_sample`` is called on each sample the detector
    reads (the worker marks its first one with it)."""
    app = App(name, settings=Settings())
    samples = app.topic(f"{name}.samples", value=MetricSample, partitions=1)
    summaries = app.topic(f"{name}.summaries-10s", value=WindowSummary, partitions=1)
    alerts = app.topic(f"{name}.alerts", value=Alert, partitions=1)
    app.windowed(
        samples,
        Tumbling(size=10),
        into=summaries,
        name="summaries",
        timestamp=lambda s: s.observed_at,
        guarantee=ExactlyOnce(),
    )(Summarize(key=lambda s: s.labels["series"]))

    def value(sample: MetricSample) -> float:
        if on_sample is not None:
            on_sample()
        return sample.value

    Monitor(
        app,
        samples,
        alerts=alerts,
        name="detect",
        rules=[Rule("spike", ZScore(threshold=5, min_std=0.5))],
        value=value,
    )
    return app


def sample(series: str, value: float, at: datetime) -> MetricSample:
    return MetricSample(name="temperature", value=value, labels={"series": series}, observed_at=at)


# --------------------------------------------------------------------------- the worker process


class _First:
    def __init__(self) -> None:
        self.seen = False

    def __call__(self) -> None:
        if not self.seen:
            self.seen = True
            os.write(1, f"FIRST {time.time():.6f}\n".encode())


async def _work(name: str) -> None:
    app = build(name, _First())
    runner = AgentRunner(app, telemetry=TelemetryConfig(heartbeat_interval=0))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(runner.run(stop))
    while not all(worker.assigned_partitions() for worker in runner.workers):
        if task.done():
            await task
            return
        await asyncio.sleep(0.05)
    os.write(1, b"READY\n")
    await task


# --------------------------------------------------------------------------- the driver


@dataclass
class Worker:
    """The worker process and what it printed."""

    process: subprocess.Popen[str]
    marks: dict[str, Any] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, name: str, log_path: str) -> Worker:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        with Path(log_path).open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.monitoring", "--worker", name],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        worker = cls(process)
        threading.Thread(target=worker._read, daemon=True).start()
        return worker

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("FIRST ") and "wall" not in self.marks:
                self.marks["cpu"] = cpu_seconds(self.process.pid)
                self.marks["wall"] = float(line.split()[1])
            elif line.startswith("READY"):
                self.ready.set()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start (see its log)")


class AlertReader:
    """Reads the alert topic read_committed, noting when each alert arrived."""

    def __init__(self, bootstrap: str, topic: str, registry: ConfluentRegistry) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-alerts-{uuid.uuid4().hex[:8]}",  # never commits: leaves no group
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.decode = RecordDecoder(registry, Alert)
        self.alerts: list[tuple[float, int, Alert]] = []  # received (epoch s), record timestamp ms, alert

    def poll(self, timeout: float = 0.05) -> int:
        messages = self.consumer.consume(num_messages=1000, timeout=timeout)
        now = time.time()
        for message in messages:
            if message.error() is None:
                self.alerts.append((now, message.timestamp()[1], self.decode(message.value())))
        return len(self.alerts)

    def close(self) -> None:
        self.consumer.close()


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return max(tp.offset, 0)
    finally:
        consumer.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _prepare(name: str, registry: ConfluentRegistry) -> App:
    app = build(name)
    prepare_topics(app, list(app.agents.values()), registry)
    return app


def throughput(h: Harness, registry: ConfluentRegistry, samples: int, series: int, timeout: float) -> None:
    per_series = samples // series
    if per_series < 14:
        raise SystemExit("--samples / --series must be at least 14 (the detector learns from the first 10)")
    total = per_series * series
    name = f"{h.prefix}throughput"
    app = _prepare(name, registry)
    topic = app.topics[f"{name}.samples"]
    rng = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    spike_at = per_series * 3 // 4
    spikes = 0
    with Publisher(app.settings, registry) as publisher:
        for step in range(per_series):
            at = base + timedelta(seconds=step)
            for s in range(series):
                value = rng.gauss(21.0, 0.3)
                if step == spike_at and s % 10 == 0:
                    value = SPIKE
                    spikes += 1
                publisher.publish(topic, sample(f"series-{s}", value, at), key=f"series-{s}")
        publisher.flush(120)
    expected = 2 * spikes  # OPEN and RESOLVED
    reader = AlertReader(h.bootstrap, f"{name}.alerts", registry)
    worker = Worker.start(name, str(h.workdir / "throughput.log"))
    deadline = time.monotonic() + timeout
    end: float | None = None
    cpu = rss = 0.0
    done = {"detect": False, "summaries": False}
    next_check = 0.0
    try:
        while time.monotonic() < deadline and worker.process.poll() is None:
            reader.poll()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 0.2
                for agent, finished in done.items():
                    group = f"{name}.{agent}"
                    done[agent] = finished or _committed(h.bootstrap, group, topic.name) >= total
            if all(done.values()) and len(reader.alerts) >= expected and "wall" in worker.marks:
                end = time.time()
                cpu = cpu_seconds(worker.process.pid)
                rss = peak_rss_mb(worker.process.pid)
                break
    finally:
        stop_process(worker.process)
    settle = time.monotonic() + 1.0
    while time.monotonic() < settle:
        reader.poll()
    reader.close()
    if end is None:
        print(
            f"throughput: did not finish within {timeout:.0f} s ({len(reader.alerts)} of {expected} "
            f"alerts, groups done: {done}); log: {h.workdir / 'throughput.log'}"
        )
        return
    seconds = end - worker.marks["wall"]
    used = cpu - worker.marks["cpu"]
    opened = sum(1 for _, _, a in reader.alerts if a.status == AlertStatus.OPEN)
    print(
        f"throughput: {total:,} samples over {series:,} series in {seconds:.2f} s = {total / seconds:,.0f} "
        f"samples/s; {used / total * 1e6:,.0f} CPU-s per 1M samples; peak RSS {rss:.0f} MB"
    )
    print(f"            {spikes} spikes, {len(reader.alerts)} alerts ({opened} OPEN; {expected} expected)")


def delay(h: Harness, registry: ConfluentRegistry, rate: float, seconds: float, series: int) -> None:
    name = f"{h.prefix}delay"
    app = _prepare(name, registry)
    topic = app.topics[f"{name}.samples"]
    reader = AlertReader(h.bootstrap, f"{name}.alerts", registry)
    worker = Worker.start(name, str(h.workdir / "delay.log"))
    try:
        worker.wait_ready(120)
        rng = random.Random(11)
        sent: dict[tuple[str, int], float] = {}  # (series, event time ms) of each spike -> send time
        tick = 0.01
        per_tick = rate * tick
        due = 0.0
        count = 0
        next_spike = 3.0
        started = time.monotonic()
        with Publisher(app.settings, registry) as publisher:
            while (elapsed := time.monotonic() - started) < seconds:
                due += per_tick
                while due >= 1:
                    due -= 1
                    key = f"series-{count % series}"
                    count += 1
                    now = datetime.now(UTC)
                    publisher.publish(topic, sample(key, rng.gauss(21.0, 0.3), now), key=key)
                if elapsed >= next_spike:
                    next_spike += 1.0
                    key = f"series-{rng.randrange(series)}"
                    now = datetime.now(UTC)
                    sent[(key, epoch_millis(now))] = time.time()
                    publisher.publish(topic, sample(key, SPIKE, now), key=key)
                reader.poll(0)
                pause = started + (int(elapsed / tick) + 1) * tick - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            publisher.flush()
        drain = time.monotonic() + 5.0
        while time.monotonic() < drain:
            reader.poll()
    finally:
        stop_process(worker.process)
        reader.close()
    opens: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for received, stamp, alert in reader.alerts:
        if alert.status == AlertStatus.OPEN:
            key = (alert.labels.get("series", ""), epoch_millis(alert.fired_at))
            opens.setdefault(key, []).append((received, stamp))
    by_receipt = [(opens[k][0][0] - at) * 1000 for k, at in sent.items() if k in opens]
    by_stamp = [opens[k][0][1] - at * 1000 for k, at in sent.items() if k in opens]
    exactly_one = sum(1 for k in sent if len(opens.get(k, [])) == 1)
    unexpected = sum(len(v) for k, v in opens.items() if k not in sent)
    print(
        f"delay:      {count:,} samples over {series} series at {rate:,.0f}/s for {seconds:.0f} s, "
        f"{len(sent)} spikes; {exactly_one} got exactly one OPEN alert, {unexpected} OPEN alerts "
        "matched no spike"
    )
    if by_receipt:
        print(
            f"            spike sent -> alert received (read_committed): "
            f"p50 {_percentile(by_receipt, 0.5):.0f} ms, p99 {_percentile(by_receipt, 0.99):.0f} ms, "
            f"max {max(by_receipt):.0f} ms"
        )
        print(
            f"            spike sent -> alert record timestamp: p50 {_percentile(by_stamp, 0.5):.0f} ms, "
            f"p99 {_percentile(by_stamp, 0.99):.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", metavar="APP", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=20_000, help="preloaded samples (20,000)")
    parser.add_argument("--series", type=int, default=1_000, help="series of the preload (1,000)")
    parser.add_argument("--rate", type=float, default=500.0, help="samples/s in the delay part (500)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the delay part (20)")
    parser.add_argument("--delay-series", type=int, default=100, help="series in the delay part (100)")
    parser.add_argument("--timeout", type=float, default=300.0, help="limit of the throughput part (300 s)")
    parser.add_argument("--only", choices=["throughput", "delay"], help="run one part")
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_work(args.worker))
        return
    settings = Settings()
    h = Harness(settings.kafka_bootstrap_servers, settings.schema_registry_url, args.timeout)
    registry = ConfluentRegistry(settings.registry_config())
    print(f"run {h.run_id}; logs in {h.workdir}", flush=True)
    try:
        if args.only in (None, "throughput"):
            throughput(h, registry, args.samples, args.series, args.timeout)
        if args.only in (None, "delay"):
            delay(h, registry, args.rate, args.seconds, args.delay_series)
    finally:
        registry.close()
        problems = h.cleanup()
        print("cleaned up" if not problems else f"clean-up problems: {'; '.join(problems)}")


if __name__ == "__main__":
    main()
