"""``LocalStack``: start, stop and inspect one Kafka (+ schema registry) stack on loopback.

This is the orchestration layer: it decides what to start and in which order (Kafka, then the registry
that stores its data in Kafka), enforces the start deadline, and undoes a failed start. How each piece is
fetched, configured or supervised lives in the sibling modules. It never touches a process it did not
start: everything goes through pid files that carry the stack's marker (see ``processes``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.errors import StackError
from streams.stack import kafka, registry
from streams.stack.fetch import SOURCE_ROOT, ensure_apicurio, ensure_kafka_libs, find_infra, read_versions
from streams.stack.layout import CLUSTER, LOOPBACK, REGISTRY, SINGLE, KafkaNode, StackPaths, Topology
from streams.stack.processes import Watched, live_pid, locked, port_open, spawn, stop, wait_until
from streams.stack.tools import find_java

Progress = Callable[[str], object]

# Seconds between SIGTERM and SIGKILL. Kafka's controlled shutdown is quick on loopback, but give it room
# to flush; the registry has nothing to flush (its state is the Kafka journal).
KAFKA_GRACE = 30.0
REGISTRY_GRACE = 15.0


def default_home() -> Path:
    """The checkout root when running from one (it has infra/pom.xml), else the current directory."""
    return SOURCE_ROOT if (SOURCE_ROOT / "infra" / "pom.xml").is_file() else Path.cwd()


@dataclass(frozen=True)
class ComponentStatus:
    """One server of the stack as ``status()`` sees it."""

    name: str
    pid: int | None
    running: bool
    address: str


class LocalStack:
    """A real Kafka (KRaft) and Apicurio Registry on 127.0.0.1, cached and run from ``<home>/.stack``.

    ``cluster=False`` is one combined broker+controller on 9092 with the registry on 8081;
    ``cluster=True`` is three nodes (19092-19094) with their own registry on 18081, for fault tests.
    The two are independent and can run at the same time.
    """

    def __init__(self, home: Path | None = None, cluster: bool = False) -> None:
        self.home = (home if home is not None else default_home()).resolve()
        self.cluster = cluster
        self._paths = StackPaths(self.home, CLUSTER if cluster else SINGLE)

    @property
    def topology(self) -> Topology:
        return self._paths.topology

    @property
    def bootstrap_servers(self) -> str:
        return self.topology.bootstrap_servers

    @property
    def registry_url(self) -> str:
        """The registry's Confluent-compatible API, as ``SCHEMA_REGISTRY_URL`` expects it."""
        return self.topology.registry_url

    def __repr__(self) -> str:
        return f"LocalStack(home={str(self.home)!r}, cluster={self.cluster})"

    # -- inspection ------------------------------------------------------------------------------------

    def _live(self, name: str) -> int | None:
        return live_pid(self._paths.pid_file(name), self._paths.marker(name))

    def _address(self, name: str) -> str:
        if name == REGISTRY:
            return self.registry_url
        return next(node.address for node in self.topology.nodes if node.name == name)

    def status(self) -> list[ComponentStatus]:
        """Every component, Kafka nodes first; stale pid files are removed and shown as not running."""
        statuses = []
        for name in self.topology.component_names():
            pid = self._live(name)
            statuses.append(ComponentStatus(name, pid, pid is not None, self._address(name)))
        return statuses

    # -- up --------------------------------------------------------------------------------------------

    def up(self, timeout: float = 240.0, progress: Progress = print) -> bool:
        """Start whatever is not running and wait until all of it answers.

        Returns True if this call started anything, False if everything was already running. The
        ``timeout`` bounds the wait for readiness, not the one-time download from Maven Central. On
        failure, whatever this call started is stopped again and StackError names the log to read.
        """
        with locked(self._paths.run / "stack.lock"):
            return self._up(timeout, progress)

    def _up(self, timeout: float, progress: Progress) -> bool:
        paths = self._paths
        kafka_todo = [node for node in self.topology.nodes if self._live(node.name) is None]
        registry_todo = self._live(REGISTRY) is None
        if not kafka_todo and not registry_todo:
            progress(f"already running: kafka on {self.bootstrap_servers}, registry on {self.registry_url}")
            return False

        java = find_java()
        todo = {node.name for node in kafka_todo} | ({REGISTRY} if registry_todo else set())
        self._check_ports_free(todo)
        infra = find_infra(self.home)
        pom = infra / "pom.xml"
        for directory in (paths.run, paths.logs, paths.data, paths.conf):
            directory.mkdir(parents=True, exist_ok=True)
        if kafka_todo:
            ensure_kafka_libs(paths, pom, progress)
        runner = None
        if registry_todo:
            runner = ensure_apicurio(paths, read_versions(pom).apicurio, progress)

        started: list[tuple[int, str]] = []
        deadline = time.monotonic() + timeout
        try:
            self._start_kafka(java, infra, kafka_todo, started, deadline, timeout, progress)
            self._start_registry(java, runner, started, deadline, timeout, progress)
        except BaseException:
            # Half a stack is worse than none: the next `up` would trip over it. The logs stay behind.
            if started:
                progress("stopping what this start launched...")
                stop(started, grace=KAFKA_GRACE)
                for name in self.topology.component_names():
                    self._live(name)  # drops the now stale pid files
            raise
        return True

    def _check_ports_free(self, components: set[str]) -> None:
        for name, port in self.topology.ports():
            if name in components and port_open(LOOPBACK, port):
                raise StackError(
                    f"port {port} on {LOOPBACK} ({name}) is already in use by a process this stack did not "
                    "start; stop it, or point KAFKA_BOOTSTRAP_SERVERS/SCHEMA_REGISTRY_URL at it"
                )

    def _watch(self, name: str, pid: int) -> Watched:
        paths = self._paths
        return Watched(name, pid, paths.marker(name), (paths.log_file(name), paths.out_file(name)))

    def _start_kafka(
        self,
        java: Path,
        infra: Path,
        todo: Sequence[KafkaNode],
        started: list[tuple[int, str]],
        deadline: float,
        timeout: float,
        progress: Progress,
    ) -> None:
        paths = self._paths
        log4j = infra / "kafka-log4j2.xml"
        begin = time.monotonic()
        configs = {node.name: kafka.write_config(paths, node) for node in todo}
        for node in todo:
            config = configs[node.name]
            if kafka.needs_format(paths, node):
                progress(f"formatting {node.name} storage (cluster id {kafka.cluster_id(paths)})...")
                kafka.format_storage(java, paths, node, config, log4j)
        watched = []
        for node in self.topology.nodes:
            pid = self._live(node.name)
            if node in todo:
                progress(f"starting {node.name} on {node.address}...")
                pid = spawn(
                    kafka.server_command(java, paths, node, configs[node.name], log4j),
                    out_file=paths.out_file(node.name),
                    pid_file=paths.pid_file(node.name),
                    cwd=paths.run,
                    env=os.environ,
                )
                started.append((pid, paths.marker(node.name)))
            if pid is not None:
                watched.append(self._watch(node.name, pid))
        expected = len(self.topology.nodes)
        wait_until(
            lambda: (
                all(port_open(LOOPBACK, n.port) for n in self.topology.nodes)
                and kafka.broker_count(self.bootstrap_servers) >= expected
            ),
            what=f"kafka on {self.bootstrap_servers}",
            watched=watched,
            deadline=deadline,
            timeout=timeout,
        )
        progress(f"kafka ready on {self.bootstrap_servers} ({time.monotonic() - begin:.1f}s)")

    def _start_registry(
        self,
        java: Path,
        runner: Path | None,
        started: list[tuple[int, str]],
        deadline: float,
        timeout: float,
        progress: Progress,
    ) -> None:
        paths = self._paths
        base_url = self.topology.registry_base_url
        begin = time.monotonic()
        pid = self._live(REGISTRY)
        if runner is not None:
            progress(f"starting registry on {base_url}...")
            pid = spawn(
                registry.server_command(java, paths, runner),
                out_file=paths.out_file(REGISTRY),
                pid_file=paths.pid_file(REGISTRY),
                # Quarkus reads .env and config/ from its working directory: give it an empty one.
                cwd=paths.data / REGISTRY,
                env=os.environ,
            )
            started.append((pid, paths.marker(REGISTRY)))
        if pid is None:
            raise StackError("registry is not running")  # unreachable: runner is None only when it runs
        wait_until(
            lambda: registry.is_ready(base_url),
            what=f"registry on {base_url}",
            watched=[self._watch(REGISTRY, pid)],
            deadline=deadline,
            timeout=timeout,
        )
        if runner is not None:
            registry.set_global_compatibility(base_url)
        progress(f"registry ready on {self.registry_url} ({time.monotonic() - begin:.1f}s)")

    # -- down ------------------------------------------------------------------------------------------

    def down(self, *, wipe: bool = False) -> list[str]:
        """Stop what ``up`` started (registry first, then all Kafka nodes together); names stopped.
        ``wipe`` then deletes the stack's data (every topic, the registry's schemas), not its
        downloads: the next ``up`` starts empty. Tests and benchmarks leave topics behind, and a
        broker holding tens of thousands of partitions runs out of file descriptors."""
        paths = self._paths
        with locked(paths.run / "stack.lock"):
            stopped: list[str] = []
            registry_pid = self._live(REGISTRY)
            if registry_pid is not None:
                stop([(registry_pid, paths.marker(REGISTRY))], grace=REGISTRY_GRACE)
                paths.pid_file(REGISTRY).unlink(missing_ok=True)
                stopped.append(REGISTRY)
            nodes = [(node.name, self._live(node.name)) for node in self.topology.nodes]
            running = [(name, pid) for name, pid in nodes if pid is not None]
            stop([(pid, paths.marker(name)) for name, pid in running], grace=KAFKA_GRACE)
            for name, _pid in running:
                paths.pid_file(name).unlink(missing_ok=True)
                stopped.append(name)
            if wipe:
                shutil.rmtree(paths.data, ignore_errors=True)
            return stopped

    @property
    def data_dir(self) -> Path:
        """Where the servers keep their data (what ``down(wipe=True)`` deletes)."""
        return self._paths.data
