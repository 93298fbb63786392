"""Shared harness: fresh topics, a preloaded input, one contender in its own process, the measurement.

For each contender run: create its topics (``RunSpec.partitions`` each), register the value schemas,
preload the input with the scenario's N Avro messages over 1,000 keys (see :mod:`bench.scenarios`;
spread over the partitions by key), then start the contender and time it from its first consumed
message (it prints ``FIRST <epoch>``) until a read_committed consumer in this process has counted the
scenario's expected outputs on the final topic (N; one per key and window in ``windows``). A scenario
with one right answer then checks the outputs, and wrong ones fail the run. CPU seconds are the
contender process's (all threads, from /proc) over exactly that window; peak RSS is its high-water
mark (VmHWM). Only the contender's own process is ever signalled. Everything created (topics, groups,
subjects) carries the run id's prefix and is deleted by :meth:`Harness.cleanup`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

from bench.scenarios import Scenario, all_scenarios
from streams import headers as hdr
from streams.events import MetricSample, TaskCompleted, TaskRequested, WindowSummary
from streams.serde.codec import AvroEncoder
from streams.serde.registry import ConfluentRegistry, subject_for

REPO = Path(__file__).resolve().parent.parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_STOP_GRACE = 30.0


@dataclass(frozen=True)
class RunSpec:
    """One contender in one scenario."""

    scenario: str  # a name in bench.scenarios.all_scenarios()
    contender: str  # row label, unique
    module: str  # bench.contenders.<x>
    python: str  # interpreter that runs it
    messages: int
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # added to the contender's environment
    partitions: int = 1  # of every topic of the run


@dataclass
class Result:
    scenario: str
    contender: str
    messages: int
    status: str = "ok"  # ok | timeout | failed: ... | skipped: ...
    partitions: int = 1
    seconds: float | None = None
    cpu_seconds: float | None = None
    peak_rss_mb: float | None = None
    outputs: int | None = None  # messages on the final topic after the contender stopped
    expected: int | None = None  # outputs that end the run
    stop_seconds: float | None = None  # from SIGTERM to exit
    note: str = ""

    @property
    def rate(self) -> float | None:
        if self.status != "ok" or not self.seconds:
            return None
        return self.messages / self.seconds

    @property
    def cpu_per_million(self) -> float | None:
        if self.status != "ok" or self.cpu_seconds is None:
            return None
        return self.cpu_seconds / self.messages * 1_000_000


class Harness:
    def __init__(
        self,
        bootstrap: str,
        registry_url: str,
        timeout: float,
        workdir: Path | None = None,
        profile: bool = False,
        scenarios: dict[str, Scenario] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.profile = profile
        self.registry_url = registry_url
        self.timeout = timeout
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = f"bench.{self.run_id}."
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.registry = ConfluentRegistry({"url": registry_url})
        self._runs = 0
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"bench-{self.run_id}-"))
        self.scenarios = scenarios or all_scenarios()
        self._schemas = {
            record.__name__: record.avro_schema()
            for record in (TaskRequested, TaskCompleted, MetricSample, WindowSummary)
        }

    # ----------------------------------------------------------------- setup

    def _base(self, spec: RunSpec) -> str:
        """Names of one run's topics and groups: unique per run, so repeats start fresh too."""
        return f"{self.prefix}{spec.contender}.{spec.scenario}.{self._runs}"

    def topics(self, spec: RunSpec) -> list[str]:
        return [f"{self._base(spec)}.t{i}" for i in range(self.scenarios[spec.scenario].topics)]

    def create_topics(
        self, names: list[str], partitions: int = 1, configs: dict[str, dict[str, str]] | None = None
    ) -> None:
        """Create ``names`` with ``partitions`` each (``configs``: extra topic configs by name)."""
        new = [
            NewTopic(
                n,
                num_partitions=partitions,
                replication_factor=1,
                config={"cleanup.policy": "delete", **(configs or {}).get(n, {})},
            )
            for n in names
        ]
        for future in self.admin.create_topics(new, operation_timeout=30).values():
            future.result()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            metadata = self.admin.list_topics(timeout=10).topics
            if all(
                n in metadata and not metadata[n].error and len(metadata[n].partitions) == partitions
                for n in names
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"topics {names} did not appear in metadata within 30 s")

    def _register(self, scenario: Scenario, topics: list[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for i, name in enumerate(topics):
            record = scenario.sink if i == len(topics) - 1 else scenario.source
            ids[name] = self.registry.register(subject_for(name), record.avro_schema())
        return ids

    def preload(self, scenario: Scenario, topic: str, count: int) -> None:
        """The scenario's first ``count`` inputs on ``topic``, flushed."""
        encoder = AvroEncoder(self.registry, subject_for(topic), scenario.source.avro_schema())
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "linger.ms": 50,
                "compression.type": "lz4",
            }
        )
        for key, value in scenario.inputs(count):
            headers: list[tuple[str, str | bytes | None]] = list(hdr.origin_headers())
            while True:
                try:
                    producer.produce(topic, encoder(value), key.encode(), headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(60):
            raise RuntimeError(f"preloading {topic} did not finish")

    # ----------------------------------------------------------------- one run

    def prepare(
        self, spec: RunSpec, extra_configs: dict[int, dict[str, str]] | None = None
    ) -> tuple[list[str], Path]:
        """Create one run's topics (``extra_configs``: topic index, 0 the input and -1 the final one ->
        extra topic configs), register its schemas and write the contender's config: the topics (input
        first, final last) and its path.

        The config's ``scenario`` is the scenario's kind (backlog and latency run the pipeline)."""
        scenario = self.scenarios[spec.scenario]
        self._runs += 1
        topics = self.topics(spec)
        self.create_topics(
            topics, spec.partitions, {topics[i]: config for i, config in (extra_configs or {}).items()}
        )
        ids = self._register(scenario, topics)
        config_path = self.workdir / f"{spec.contender}.{spec.scenario}.p{spec.partitions}.{self._runs}.json"
        config = {
            "scenario": scenario.kind,
            "bootstrap": self.bootstrap,
            "registry": self.registry_url,
            "group": self._base(spec),
            "topics": topics,
            "schemas": self._schemas,
            "schema_ids": ids,
            "messages": spec.messages,
            "partitions": spec.partitions,
            "io_delay": 0.01,
            "options": spec.options,
            "state_dir": str(config_path.with_suffix(".state")),
            **scenario.config(),
        }
        config_path.write_text(json.dumps(config), encoding="utf-8")
        return topics, config_path

    def run(self, spec: RunSpec) -> Result:
        scenario = self.scenarios[spec.scenario]
        expected = scenario.expected(spec.messages)
        result = Result(
            spec.scenario, spec.contender, spec.messages, expected=expected, partitions=spec.partitions
        )
        topics, config_path = self.prepare(spec)
        self.preload(scenario, topics[0], spec.messages)
        log_path = config_path.with_suffix(".log")
        counter = counter_consumer(self.bootstrap, topics[-1], spec.partitions)
        outputs: list[tuple[bytes | None, bytes | None]] | None = [] if scenario.checked else None
        try:
            self._measure(spec, config_path, log_path, counter, result, outputs)
        finally:
            counter.close()
        if outputs is not None and result.status == "ok":
            problem = scenario.check(spec.messages, outputs)
            if problem:
                result.status = f"failed: {problem}"
            else:
                result.note = f"{result.note}; {len(outputs):,} results, all right".lstrip("; ")
        return result

    def _measure(
        self,
        spec: RunSpec,
        config_path: Path,
        log_path: Path,
        counter: Consumer,
        result: Result,
        outputs: list[tuple[bytes | None, bytes | None]] | None,
    ) -> None:
        expected = result.expected or spec.messages
        with log_path.open("w", encoding="utf-8") as log:
            child, first, reader, profiler = self.launch(spec, config_path, log)
            deadline = time.monotonic() + self.timeout
            count = 0
            end: float | None = None
            cpu_end = 0.0
            try:
                while time.monotonic() < deadline:
                    count += _consume_count(counter, outputs)
                    if count >= expected and "wall" in first:
                        end = time.time()
                        cpu_end = cpu_seconds(child.pid)
                        _write_thread_cpu(child.pid, first, log_path.with_suffix(".threads.txt"))
                        result.peak_rss_mb = peak_rss_mb(child.pid)
                        break
                    if child.poll() is not None:
                        result.status = f"failed: exited with {child.returncode} after {count} outputs"
                        break
                else:
                    result.status = f"timeout: {count} of {expected} outputs after {self.timeout:.0f} s"
            finally:
                if result.peak_rss_mb is None and child.poll() is None:
                    result.peak_rss_mb = peak_rss_mb(child.pid)  # also for a run that timed out
                stopping = time.monotonic()
                stopped = self.stop(child, profiler)
                result.stop_seconds = time.monotonic() - stopping
            reader.join(timeout=5)
        if end is not None:
            result.seconds = end - first["wall"]
            result.cpu_seconds = cpu_end - first["cpu"]
        if not stopped:
            result.note = f"did not stop within {_STOP_GRACE:.0f} s of SIGTERM (killed)"
        # What else arrived (duplicates, stragglers) once the contender has stopped.
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            count += _consume_count(counter, outputs)
        result.outputs = count
        if result.status == "ok" and count != expected:
            extra = f"{count} outputs, {expected} expected"
            result.note = f"{result.note}; {extra}".lstrip("; ")
        if result.status != "ok":
            result.note = f"{result.note}; log: {tail(log_path)}".lstrip("; ")

    def launch(
        self, spec: RunSpec, config_path: Path, log: IO[str]
    ) -> tuple[subprocess.Popen[str], dict[str, Any], threading.Thread, subprocess.Popen[bytes] | None]:
        """Start the contender (stderr to ``log``), a thread reading its ``FIRST`` marker into the
        returned dict (``wall``, ``cpu``, ``threads``), and py-spy if profiling."""
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **spec.env)
        child = subprocess.Popen(
            [spec.python, "-m", spec.module, str(config_path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        profile = Path(log.name).with_suffix(".pyspy.txt")
        profiler = start_profiler(child.pid, profile) if self.profile else None
        first: dict[str, Any] = {}
        reader = threading.Thread(target=_read_marker, args=(child, first), daemon=True)
        reader.start()
        return child, first, reader, profiler

    @staticmethod
    def stop(child: subprocess.Popen[str], profiler: subprocess.Popen[bytes] | None) -> bool:
        """Stop the contender (see :func:`stop_process`), then let py-spy write its file."""
        stopped = stop_process(child)
        if profiler is not None:
            try:
                profiler.wait(timeout=60)  # writes its file once the target has exited
            except subprocess.TimeoutExpired:
                profiler.kill()
        return stopped

    # ----------------------------------------------------------------- teardown

    def cleanup(self) -> list[str]:
        """Delete this run's topics, consumer groups and schema subjects; returns what went wrong."""
        problems: list[str] = []
        # Quix names its changelogs changelog__<group>--...: the prefix is inside, not in front.
        topics = [t for t in self.admin.list_topics(timeout=30).topics if self.prefix in t]
        if topics:
            for name, future in self.admin.delete_topics(topics, operation_timeout=30).items():
                try:
                    future.result()
                except KafkaException as exc:
                    problems.append(f"topic {name}: {exc}")
        problems += self._delete_groups()
        client = SchemaRegistryClient({"url": self.registry_url})
        try:
            for subject in client.get_subjects():
                if subject.startswith(self.prefix):
                    client.delete_subject(subject)
                    client.delete_subject(subject, permanent=True)
        except Exception as exc:  # noqa: BLE001 - best effort; reported, never fatal
            problems.append(f"registry subjects: {exc}")
        finally:
            client.close()
        self.registry.close()
        return problems

    def _delete_groups(self) -> list[str]:
        """Delete this run's consumer groups; a killed contender's group stays non-empty until its
        session times out, so those are retried for up to a minute."""
        failed: dict[str, str] = {}
        try:
            listing = self.admin.list_consumer_groups(request_timeout=30).result()
        except KafkaException as exc:
            return [f"listing groups: {exc}"]
        groups = [g.group_id for g in listing.valid if g.group_id.startswith(self.prefix)]
        deadline = time.monotonic() + 60
        while groups:
            failed.clear()
            retry: list[str] = []
            for name, future in self.admin.delete_consumer_groups(groups, request_timeout=30).items():
                try:
                    future.result()
                except KafkaException as exc:
                    failed[name] = str(exc.args[0])
                    if exc.args[0].code() == KafkaError.NON_EMPTY_GROUP:
                        retry.append(name)
            if not retry or time.monotonic() > deadline:
                break
            groups = retry
            time.sleep(5)
        return [f"group {name}: {error}" for name, error in failed.items()]


def counter_consumer(bootstrap: str, topic: str, partitions: int = 1) -> Consumer:
    """A read_committed consumer of every partition of ``topic`` from the start, in no group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-counter-{uuid.uuid4().hex[:8]}",  # never commits: leaves no group behind
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def _consume_count(consumer: Consumer, keep: list[tuple[bytes | None, bytes | None]] | None = None) -> int:
    """Messages consumed now; their keys and values are added to ``keep`` if given."""
    messages = [m for m in consumer.consume(num_messages=10_000, timeout=0.02) if m.error() is None]
    if keep is not None:
        keep.extend((m.key(), m.value()) for m in messages)
    return len(messages)


def _thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """User and system CPU seconds per thread name (threads of one name summed)."""
    cpu: dict[str, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text(encoding="ascii")
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if task.name == str(pid):
            name += " (main thread)"
        fields = stat[stat.rindex(")") + 2 :].split()
        user, system = cpu.get(name, (0.0, 0.0))
        cpu[name] = (user + int(fields[11]) / _CLK_TCK, system + int(fields[12]) / _CLK_TCK)
    return cpu


def _write_thread_cpu(pid: int, first: dict[str, Any], path: Path) -> None:
    """Where the contender's CPU went during the timed window, by thread name (diagnosis only)."""
    end = _thread_cpu(pid)
    start: dict[str, tuple[float, float]] = first.get("threads", {})
    rows = []
    for name, (user, system) in end.items():
        user0, system0 = start.get(name, (0.0, 0.0))
        rows.append((user - user0 + system - system0, user - user0, system - system0, name))
    rows.sort(reverse=True)
    path.write_text(
        "   total    user  system  thread\n"
        + "".join(f"{t:8.2f}{u:8.2f}{s:8.2f}  {name}\n" for t, u, s, name in rows),
        encoding="utf-8",
    )


def _read_marker(child: subprocess.Popen[str], first: dict[str, Any]) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        # Not startswith: a framework may have written terminal escapes without a newline before it.
        at = line.find("FIRST ")
        if at >= 0 and "wall" not in first:
            first["threads"] = _thread_cpu(child.pid)
            first["cpu"] = cpu_seconds(child.pid)
            first["wall"] = float(line[at:].split()[1])


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling process ``pid`` (all threads, collapsed stacks) into ``output``, written once the
    target has exited; slows it, so numbers of a profiled run are for reading the profile only."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--threads",
            "--gil",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop_process(child: subprocess.Popen[Any]) -> bool:
    """SIGTERM our child, wait for a clean stop, SIGKILL it if it does not come. True if clean."""
    if child.poll() is not None:
        return True
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=_STOP_GRACE)
        return True
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return False


def tail(path: Path, lines: int = 6) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])
