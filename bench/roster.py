"""The contenders of the relay scenarios (pipeline, io, windows, backlog, latency): who runs, from which
interpreter, and how each is described in the table's notes."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.harness import REPO

PEER_PYTHON = REPO / "bench" / ".venv" / "bin" / "python"
INSTALL_HINT = ".venv/bin/python -m venv bench/.venv && bench/.venv/bin/pip install -r bench/requirements.txt"
OURS = "streams"
_ALL = ("pipeline", "io", "windows", "backlog")  # the latency scenario only where a row says so


@dataclass(frozen=True)
class Contender:
    name: str
    module: str
    requires: str  # module that must import in its interpreter
    dist: str  # distribution whose version the header line shows
    peer: bool  # runs from bench/.venv
    sequential: bool  # handles a partition one message at a time (io scenario: fewer messages)
    how: str  # shown in the notes column
    ours: bool = False  # a streams variant: takes --pipeline-concurrency / --io-concurrency
    options: dict[str, Any] = field(default_factory=dict)
    scenarios: tuple[str, ...] = _ALL
    notes: dict[str, str] = field(default_factory=dict)  # scenario -> how it runs there, instead of how
    extra: bool = False  # not run unless named in --only or --extras given
    env: dict[str, str] = field(default_factory=dict)  # environment of the contender's process


CONTENDERS = [
    Contender(
        OURS,
        "bench.contenders.streams_impl",
        "streams",
        "confluent-kafka",
        peer=False,
        sequential=False,
        ours=True,
        how="at-least-once",
        scenarios=(*_ALL, "latency"),
        notes={"windows": "app.windowed, Tumbling; tables in memory + changelog topics; at-least-once"},
    ),
    Contender(
        "streams-eos",
        "bench.contenders.streams_impl",
        "streams",
        "confluent-kafka",
        peer=False,
        sequential=False,
        ours=True,
        how="exactly-once (transactions)",
        options={"guarantee": "exactly_once"},
        extra=True,
        notes={
            "windows": "app.windowed, Tumbling; tables in memory + changelog topics; "
            "exactly-once (transactions)"
        },
    ),
    # The cost of tracing, on our own pipeline: no tracing middleware at all; the default (context
    # propagated, nothing recorded); every message sampled and every span exported (as JSON lines).
    Contender(
        "streams-trace-off",
        "bench.contenders.streams_impl",
        "streams",
        "confluent-kafka",
        peer=False,
        sequential=False,
        ours=True,
        how="tracing off (STREAMS_TRACING=false)",
        env={"STREAMS_TRACING": "false"},
        scenarios=("pipeline",),
        extra=True,
    ),
    Contender(
        "streams-trace-sampled",
        "bench.contenders.streams_impl",
        "streams",
        "confluent-kafka",
        peer=False,
        sequential=False,
        ours=True,
        how="100% sampled, spans exported as JSON lines to /dev/null",
        env={"STREAMS_TRACES_FILE": "/dev/null", "OTEL_TRACES_SAMPLER": "always_on"},
        scenarios=("pipeline",),
        extra=True,
    ),
    Contender(
        "raw-confluent",
        "bench.contenders.raw_confluent",
        "confluent_kafka",
        "confluent-kafka",
        peer=False,
        sequential=True,
        how="hand-written loop, 1 thread, commit after flush",
        scenarios=(*_ALL, "latency"),
        notes={"windows": "hand-written loop, counts in a dict: no state durability; commit after flush"},
    ),
    # The same loop waiting at most 2 ms for a batch instead of 100 ms: what a hop costs in latency
    # when the loop does not wait for batches to fill.
    Contender(
        "raw-confluent-2ms",
        "bench.contenders.raw_confluent",
        "confluent_kafka",
        "confluent-kafka",
        peer=False,
        sequential=True,
        how="hand-written loop, 1 thread, commit after flush, consume(500, timeout=2 ms)",
        options={"poll_timeout": 0.002},
        scenarios=("pipeline", "latency"),
        extra=True,
    ),
    Contender(
        "faust",
        "bench.contenders.faust_impl",
        "faust",
        "faust-streaming",
        peer=True,
        sequential=True,
        how="one agent per stage (aiokafka)",
        scenarios=("pipeline", "io", "backlog"),
    ),
    # Quix as its users reach the registry (its AvroSerializer / AvroDeserializer with a
    # SchemaRegistryClientConfig), and with the fastavro codec everyone else uses, on bytes.
    Contender(
        "quix",
        "bench.contenders.quix_impl",
        "quixstreams",
        "quixstreams",
        peer=True,
        sequential=True,
        how="one StreamingDataFrame per stage, its registry Avro serializers",
        options={"serde": "registry"},
        scenarios=(*_ALL, "latency"),
        notes={
            "windows": "tumbling_window().count().final(), closing per key (its default); "
            "RocksDB + changelog topics (its default); its registry Avro serializers; "
            "at-least-once"
        },
    ),
    Contender(
        "quix-fastavro",
        "bench.contenders.quix_impl",
        "quixstreams",
        "quixstreams",
        peer=True,
        sequential=True,
        how="one StreamingDataFrame per stage, bytes + fastavro codec",
        options={"serde": "fastavro"},
        notes={
            "windows": "tumbling_window().count().final(), closing per key (its default); "
            "RocksDB + changelog topics (its default); fastavro codec; at-least-once"
        },
    ),
]


def python_for(contender: Contender) -> str:
    return str(PEER_PYTHON) if contender.peer else sys.executable


def missing(contender: Contender) -> str | None:
    """Why this contender cannot run here, or None."""
    python = python_for(contender)
    if contender.peer and not PEER_PYTHON.exists():
        return f"bench/.venv does not exist; install the peers: {INSTALL_HINT}"
    probe = subprocess.run(
        [python, "-W", "ignore", "-c", f"import {contender.requires}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"cannot import {contender.requires} ({last}); install the peers: {INSTALL_HINT}"
    return None


def version(python: str, module: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    probe = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    return probe.stdout.strip() or "?"
