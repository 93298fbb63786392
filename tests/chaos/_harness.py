"""Drive the chaos pipeline: publish keyed inputs, start and kill worker processes, check outputs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from streams import Publisher, Record, Settings, Topic
from streams import headers as hdr
from streams.admin import TopicAdmin
from streams.events import TaskCompleted, TaskRequested
from streams.serde.codec import RecordDecoder
from streams.serde.registry import ConfluentRegistry
from streams.telemetry.lag import LagReader

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Pipeline:
    settings: Settings
    registry: ConfluentRegistry
    prefix: str
    log_dir: Path
    guarantee: str = "exactly_once"
    partitions: int = 6
    concurrency: int = 32
    extra_env: dict[str, str] = field(default_factory=dict)
    app_ref: str = "tests.chaos.pipeline_app:app"
    agents: tuple[str, ...] = ("stage_one", "stage_two")
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: int = 0

    @classmethod
    def create(
        cls, settings: Settings, registry: ConfluentRegistry, tmp: Path, **options: object
    ) -> Pipeline:
        prefix = f"chaos.{uuid.uuid4().hex[:8]}"
        pipeline = cls(settings, registry, prefix, tmp, **options)  # type: ignore[arg-type]
        TopicAdmin(settings, registry).apply(
            [
                Topic(f"{prefix}.in", value=TaskRequested, partitions=pipeline.partitions),
                Topic(f"{prefix}.mid", value=TaskRequested, partitions=pipeline.partitions),
                Topic(f"{prefix}.out", value=TaskCompleted, partitions=pipeline.partitions),
            ]
        )
        return pipeline

    def publish(self, keys: int, per_key: int, *, shuffled: bool = False) -> int:
        """Publish ``per_key`` messages for each of ``keys`` keys; payload is 'key:seq'.

        Interleaved (key 0..n, then again) by default; ``shuffled`` publishes keys in a random (seeded)
        order, as real traffic comes: a key's messages bunch up, so lanes finish far out of offset
        order and the commit position trails finished work.
        """
        order = [k for _ in range(per_key) for k in range(keys)]
        if shuffled:
            random.Random(len(order)).shuffle(order)
        topic = Topic(f"{self.prefix}.in", value=TaskRequested, partitions=self.partitions)
        next_seq = [0] * keys
        with Publisher(self.settings, self.registry) as publisher:
            for k in order:
                key, seq = f"key-{k}", next_seq[k]
                next_seq[k] += 1
                publisher.publish(
                    topic,
                    TaskRequested(task_id=f"{key}:{seq}", capability="chaos", payload=f"{key}:{seq}"),
                    key=key,
                )
        return keys * per_key

    def start_worker(self, only: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """A `streams run` process of the app: every agent, or ``only`` those named."""
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.settings.schema_registry_url,
            "CHAOS_PREFIX": self.prefix,
            "CHAOS_GUARANTEE": self.guarantee,
            "CHAOS_PARTITIONS": str(self.partitions),
            "CHAOS_CONCURRENCY": str(self.concurrency),
            **self.extra_env,
        }
        self.started += 1
        with (self.log_dir / f"worker-{self.started}.log").open("wb") as log:  # the child keeps its copy
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams", "run", self.app_ref, *(f"--agent={name}" for name in only)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(worker)
        return worker

    def wait_until_assigned(self, worker: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
        """Wait until ``worker`` has joined both groups and owns partitions of each stage."""
        log = self.log_dir / f"worker-{self.workers.index(worker) + 1}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if all(f"agent {name} assigned" in text for name in self.agents):
                return
            assert worker.poll() is None, f"worker exited with {worker.returncode}:\n{text}"
            time.sleep(0.2)
        raise AssertionError(f"worker never got partitions:\n{log.read_text(errors='replace')}")

    def committed_input(self, agent: str) -> int:
        """How many input messages ``agent``'s group has committed: its progress, read from the group's
        offsets, which move with each commit (a crashed worker's open transaction, which blocks
        read_committed readers of the output for its timeout, does not hold this back)."""
        group = f"{self.prefix.replace('.', '-')}.{agent}"
        rows = LagReader(self.settings).lag({group: [f"{self.prefix}.in"]})
        return sum(row.committed or 0 for row in rows)

    def kill_9(self, worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)

    def sigterm(self, worker: subprocess.Popen[bytes], timeout: float = 90.0) -> int:
        """Graceful stop: the worker drains what it received, commits and exits (0 expected)."""
        worker.send_signal(signal.SIGTERM)
        return worker.wait(timeout)

    def stop_all(self) -> list[int]:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        codes = []
        for worker in self.workers:
            try:
                codes.append(worker.wait(60))
            except subprocess.TimeoutExpired:
                worker.kill()
                codes.append(worker.wait())
        return codes

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("worker-*.log"))
        )


class CommittedReader:
    """Reads a topic as read_committed consumers see it, incrementally: what downstream would get."""

    def __init__(
        self, settings: Settings, registry: ConfluentRegistry, topic: str, value: type[Record] = TaskCompleted
    ) -> None:
        self._consumer = Consumer(
            settings.consumer_config(f"checker-{uuid.uuid4().hex}", **{"isolation.level": "read_committed"})
        )
        self._consumer.subscribe([topic])
        self._decode = RecordDecoder(registry, value)
        self.by_partition: dict[int, list[str]] = defaultdict(list)
        self.results: list[tuple[str, str | None]] = []  # (task_id, result) of TaskCompleted values
        self.values: list[Any] = []
        self.ids: list[str] = []  # message-id headers, in the order read
        self.count = 0

    def drain(self, seconds: float = 1.0) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self._consumer.consume(1000, 0.2):
                if message.error():
                    continue
                value = self._decode(message.value())
                self.values.append(value)
                self.ids.append(hdr.get(message.headers(), hdr.MESSAGE_ID) or "")
                if isinstance(value, TaskCompleted):
                    self.by_partition[message.partition()].append(value.task_id)
                    self.results.append((value.task_id, value.result))
                self.count += 1
        return self.count

    def close(self) -> None:
        self._consumer.close()


class EffectsLog:
    """The chaos app's side effect outside Kafka: one line per handled stage-two message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def count(self) -> int:
        return len(self.lines())


def expected_ids(keys: int, per_key: int) -> set[str]:
    return {f"key-{k}:{s}" for k in range(keys) for s in range(per_key)}


def check_exactly_once_in_key_order(reader: CommittedReader, keys: int, per_key: int) -> None:
    """Every input has exactly one output, and each key's outputs are in input order."""
    all_ids = [task_id for ids in reader.by_partition.values() for task_id in ids]
    duplicates = len(all_ids) - len(set(all_ids))
    assert duplicates == 0, f"{duplicates} duplicate outputs"
    expected = {f"key-{k}:{s}" for k in range(keys) for s in range(per_key)}
    missing = expected - set(all_ids)
    assert not missing, f"{len(missing)} inputs have no output, e.g. {sorted(missing)[:5]}"
    per_key_seq: dict[str, list[int]] = defaultdict(list)
    for ids in reader.by_partition.values():
        for task_id in ids:
            key, seq = task_id.rsplit(":", 1)
            per_key_seq[key].append(int(seq))
    out_of_order = [k for k, seqs in per_key_seq.items() if seqs != sorted(seqs)]
    assert not out_of_order, f"{len(out_of_order)} keys out of order, e.g. {out_of_order[:3]}"
