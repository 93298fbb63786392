"""Where the local stack lives on disk and which loopback ports it uses.

This module owns names, not behaviour: the two topologies (single node, 3-node cluster) and the directory
layout under ``<home>/.stack`` (git-ignored)::

    .stack/
      m2/                  Maven local repository (Maven Central downloads, reused offline)
      kafka/libs/          Kafka broker jars + log4j2 backend (shared by both topologies)
      apicurio/<version>/  unpacked Apicurio Registry app (shared by both topologies)
      run/ logs/ data/ conf/            the single-node stack
      cluster/run/ logs/ data/ conf/    the 3-node cluster, so both can run at once

Every server listens on 127.0.0.1 only: the stack is for this machine, never for the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
CCOMPAT_PATH = "/apis/ccompat/v7"
REGISTRY = "registry"


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller process."""

    name: str
    node_id: int
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@dataclass(frozen=True)
class Topology:
    """The shape of one stack: its Kafka nodes, replication settings and registry port."""

    name: str
    nodes: tuple[KafkaNode, ...]
    registry_port: int
    replication_factor: int
    min_insync_replicas: int
    kafka_heap: tuple[str, str]  # (-Xms, -Xmx)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{n.node_id}@{LOOPBACK}:{n.controller_port}" for n in self.nodes)

    @property
    def registry_base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.registry_port}"

    @property
    def registry_url(self) -> str:
        """The Confluent-compatible API that confluent-kafka's SchemaRegistryClient speaks."""
        return self.registry_base_url + CCOMPAT_PATH

    def ports(self) -> list[tuple[str, int]]:
        """Every (component, port) this topology listens on, for the port-in-use check."""
        owned = [(n.name, p) for n in self.nodes for p in (n.port, n.controller_port)]
        return [*owned, (REGISTRY, self.registry_port)]

    def component_names(self) -> list[str]:
        """Start order: Kafka first, since the registry stores its data in Kafka."""
        return [n.name for n in self.nodes] + [REGISTRY]


SINGLE = Topology(
    name="local",
    nodes=(KafkaNode("kafka", node_id=1, port=9092, controller_port=9093),),
    registry_port=8081,
    replication_factor=1,
    min_insync_replicas=1,
    kafka_heap=("256m", "1g"),
)

# Three voters: the smallest quorum that survives losing a node, which is what fault tests need.
CLUSTER = Topology(
    name="cluster",
    nodes=tuple(
        KafkaNode(f"kafka-{i}", node_id=i, port=19091 + i, controller_port=19191 + i) for i in (1, 2, 3)
    ),
    registry_port=18081,
    replication_factor=3,
    min_insync_replicas=2,
    kafka_heap=("256m", "768m"),
)


@dataclass(frozen=True)
class StackPaths:
    """Directories of one stack; artifacts are shared, state (run/logs/data/conf) is per topology."""

    home: Path
    topology: Topology

    @property
    def stack_dir(self) -> Path:
        return self.home / ".stack"

    @property
    def root(self) -> Path:
        return self.stack_dir if self.topology.name == "local" else self.stack_dir / self.topology.name

    @property
    def m2(self) -> Path:
        return self.stack_dir / "m2"

    @property
    def kafka_libs(self) -> Path:
        return self.stack_dir / "kafka" / "libs"

    @property
    def apicurio(self) -> Path:
        return self.stack_dir / "apicurio"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    def pid_file(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        """The component's own log (log4j2 for Kafka, Quarkus console output for the registry)."""
        return self.logs / f"{component}.log"

    def out_file(self, component: str) -> Path:
        """Captured stdout/stderr: JVM crashes and anything printed before logging starts."""
        return self.logs / f"{component}.out"

    def marker(self, component: str) -> str:
        """A JVM argument that tags a process as this stack's component (guards against pid reuse)."""
        return f"-Dstreams.stack.component={self.root.resolve()}/{component}"
