"""The local-stack launcher's pure parts: no Java is started, no network is used.

Processes here are tiny Python sleepers started through the same detached-spawn path as the servers, so
pid-file, marker and stop logic are tested for real.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import socket
import stat
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.config import LOCAL_BOOTSTRAP_SERVERS, LOCAL_REGISTRY_URL
from streams.errors import StackError
from streams.stack import ComponentStatus, LocalStack, fetch, kafka, processes, registry, tools
from streams.stack import local as local_module
from streams.stack.layout import CLUSTER, SINGLE, KafkaNode, StackPaths

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SLEEP = "import time; time.sleep(60)"


def props_of(topology_paths: StackPaths, node: KafkaNode) -> dict[str, str]:
    return kafka.server_properties(topology_paths.topology, node, Path("/data") / node.name)


# -- topology and server.properties -----------------------------------------------------------------


def test_single_node_properties(tmp_path: Path) -> None:
    (node,) = SINGLE.nodes
    props = props_of(StackPaths(tmp_path, SINGLE), node)
    assert props["node.id"] == "1"
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["log.dirs"] == "/data/kafka"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "1"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["min.insync.replicas"] == "1"


def test_cluster_properties(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path, CLUSTER)
    all_props = [props_of(paths, node) for node in CLUSTER.nodes]
    assert [p["node.id"] for p in all_props] == ["1", "2", "3"]
    voters = "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
    assert {p["controller.quorum.voters"] for p in all_props} == {voters}
    assert [p["advertised.listeners"] for p in all_props] == [
        "PLAINTEXT://127.0.0.1:19092",
        "PLAINTEXT://127.0.0.1:19093",
        "PLAINTEXT://127.0.0.1:19094",
    ]
    assert all_props[1]["listeners"] == "PLAINTEXT://127.0.0.1:19093,CONTROLLER://127.0.0.1:19193"
    assert len({p["log.dirs"] for p in all_props}) == 3
    for props in all_props:
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        assert props["share.coordinator.state.topic.min.isr"] == "2"


def test_no_port_is_shared_between_the_two_stacks() -> None:
    single = [port for _, port in SINGLE.ports()]
    cluster = [port for _, port in CLUSTER.ports()]
    assert len(set(single + cluster)) == len(single) + len(cluster)


def test_rendered_properties_parse_back() -> None:
    props = kafka.server_properties(SINGLE, SINGLE.nodes[0], Path("/d"))
    text = kafka.render_properties(props)
    assert text.startswith("#")
    assert kafka.parse_properties(text) == props


def test_single_stack_matches_settings_defaults(tmp_path: Path) -> None:
    stack = LocalStack(home=tmp_path)
    assert stack.bootstrap_servers == LOCAL_BOOTSTRAP_SERVERS
    assert stack.registry_url == LOCAL_REGISTRY_URL


def test_cluster_stack_addresses(tmp_path: Path) -> None:
    stack = LocalStack(home=tmp_path, cluster=True)
    assert stack.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert stack.registry_url == "http://127.0.0.1:18081/apis/ccompat/v7"


def test_default_home_is_the_checkout() -> None:
    assert LocalStack().home == REPO


def test_stacks_share_artifacts_but_not_state(tmp_path: Path) -> None:
    single, cluster = StackPaths(tmp_path, SINGLE), StackPaths(tmp_path, CLUSTER)
    assert single.kafka_libs == cluster.kafka_libs == tmp_path / ".stack/kafka/libs"
    assert single.m2 == cluster.m2
    for attr in ("run", "logs", "data", "conf"):
        assert getattr(single, attr) != getattr(cluster, attr)
    assert cluster.pid_file("kafka-1") == tmp_path / ".stack/cluster/run/kafka-1.pid"
    assert single.marker("kafka") != cluster.marker("kafka")


def test_new_cluster_id_is_a_base64url_uuid() -> None:
    for _ in range(50):
        cid = kafka.new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_cluster_id_is_shared_and_reuses_a_formatted_node(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path, CLUSTER)
    first = kafka.cluster_id(paths)
    assert kafka.cluster_id(paths) == first  # saved, not regenerated
    node2 = kafka.node_data_dir(paths, CLUSTER.nodes[1])
    node2.mkdir(parents=True)
    (node2 / "meta.properties").write_text("version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=2\n")
    assert kafka.cluster_id(paths) == "AAAAAAAAAAAAAAAAAAAAAA"
    assert not kafka.needs_format(paths, CLUSTER.nodes[1])
    assert kafka.needs_format(paths, CLUSTER.nodes[0])


def test_kafka_command(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path, SINGLE)
    node = SINGLE.nodes[0]
    cmd = kafka.server_command(Path("/j/java"), paths, node, Path("/c/kafka.properties"), Path("/l.xml"))
    assert cmd[0] == "/j/java"
    assert paths.marker("kafka") in cmd
    assert "-Xmx1g" in cmd
    assert "-Dlog4j2.configurationFile=/l.xml" in cmd
    assert f"-Dstreams.log.file={paths.log_file('kafka')}" in cmd
    assert cmd[cmd.index("-cp") + 1] == f"{paths.kafka_libs}/*"
    assert cmd[-2:] == ["kafka.Kafka", "/c/kafka.properties"]


def test_registry_settings(tmp_path: Path) -> None:
    props = registry.registry_properties(StackPaths(tmp_path, CLUSTER))
    assert props["apicurio.storage.kind"] == "kafkasql"
    assert props["apicurio.kafkasql.bootstrap.servers"] == CLUSTER.bootstrap_servers
    assert props["quarkus.http.host"] == "127.0.0.1"
    assert props["quarkus.http.port"] == "18081"
    assert props["apicurio.kafkasql.topic.retention.ms"] == "-1"
    cmd = registry.server_command(Path("java"), StackPaths(tmp_path, CLUSTER), Path("/a/runner.jar"))
    assert "-Dapicurio.storage.kind=kafkasql" in cmd
    assert cmd[-2:] == ["-jar", "/a/runner.jar"]


def test_log4j_config_writes_to_the_file_the_launcher_names() -> None:
    text = (REPO / "infra" / "kafka-log4j2.xml").read_text()
    assert "${sys:streams.log.file}" in text
    assert "<Console" not in text


# -- pid files and processes ------------------------------------------------------------------------


def _spawn_sleeper(tmp_path: Path, marker: str, code: str = SLEEP) -> tuple[int, Path]:
    pid_file = tmp_path / "run" / "sleeper.pid"
    pid = processes.spawn(
        [sys.executable, "-c", code, marker],
        out_file=tmp_path / "logs" / "sleeper.out",
        pid_file=pid_file,
        cwd=tmp_path,
        env=os.environ,
    )
    return pid, pid_file


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[str]:
    tag = f"-Dstreams.stack.component={tmp_path}/sleeper"
    yield tag
    # Never leave a sleeper behind, whatever the test did.
    for pid_file in tmp_path.glob("run/*.pid"):
        pid = processes.live_pid(pid_file, tag)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def _wait_gone(pid: int, marker: str) -> None:
    deadline = time.monotonic() + 10
    while processes.is_ours(pid, marker):
        assert time.monotonic() < deadline, "process did not exit"
        time.sleep(0.05)


def test_spawned_process_is_detached_ours_and_stoppable(tmp_path: Path, marker: str) -> None:
    pid, pid_file = _spawn_sleeper(tmp_path, marker)
    assert pid_file.read_text().strip() == str(pid)
    assert processes.live_pid(pid_file, marker) == pid
    assert not processes.is_ours(pid, marker[:-1])  # whole arguments only: "kafka" is not "kafka-1"
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # not our child: it outlives the CLI and never becomes our zombie
    assert os.getsid(pid) != os.getsid(0)  # its own session: the terminal's hangup does not reach it
    processes.stop([(pid, marker)], grace=10)
    assert not processes.is_ours(pid, marker)
    assert processes.live_pid(pid_file, marker) is None
    assert not pid_file.exists()


def test_stop_escalates_to_sigkill(tmp_path: Path, marker: str) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    pid, _ = _spawn_sleeper(tmp_path, marker, stubborn)
    time.sleep(0.3)  # let it install the handler
    began = time.monotonic()
    processes.stop([(pid, marker)], grace=0.5)
    assert not processes.is_ours(pid, marker)
    assert time.monotonic() - began < 8


def test_pid_file_of_an_exited_process_is_stale(tmp_path: Path, marker: str) -> None:
    pid, pid_file = _spawn_sleeper(tmp_path, marker, "pass")
    _wait_gone(pid, marker)
    assert processes.live_pid(pid_file, marker) is None
    assert not pid_file.exists()


def test_pid_file_naming_a_stranger_is_stale(tmp_path: Path, marker: str) -> None:
    # A recycled pid: alive, but without our marker. It must be neither reported nor killed.
    pid_file = tmp_path / "run" / "kafka.pid"
    pid_file.parent.mkdir()
    pid_file.write_text(f"{os.getpid()}\n")
    assert processes.live_pid(pid_file, marker) is None
    assert not pid_file.exists()
    processes.stop([(os.getpid(), marker)], grace=0.1)  # a no-op, or this test would not finish


def test_garbage_pid_file_is_stale(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("not a pid\n")
    assert processes.live_pid(pid_file, "m") is None
    assert not pid_file.exists()


def test_status_cleans_stale_pid_files(tmp_path: Path) -> None:
    stack = LocalStack(home=tmp_path, cluster=True)
    run = tmp_path / ".stack" / "cluster" / "run"
    run.mkdir(parents=True)
    (run / "kafka-2.pid").write_text(f"{os.getpid()}\n")
    (run / "registry.pid").write_text("999999999\n")
    statuses = stack.status()
    assert [s.name for s in statuses] == ["kafka-1", "kafka-2", "kafka-3", "registry"]
    assert all(s == ComponentStatus(s.name, None, False, s.address) for s in statuses)
    assert statuses[1].address == "127.0.0.1:19093"
    assert not list(run.glob("*.pid"))
    assert stack.down() == []


def test_wait_until_fails_fast_when_the_process_dies(tmp_path: Path, marker: str) -> None:
    pid, _ = _spawn_sleeper(tmp_path, marker, "pass")
    log = tmp_path / "logs" / "sleeper.log"
    watched = [processes.Watched("sleeper", pid, marker, (log,))]
    with pytest.raises(StackError, match=rf"sleeper exited during startup; read {log}"):
        processes.wait_until(
            lambda: False, what="sleeper", watched=watched, deadline=time.monotonic() + 30, timeout=30
        )


def test_wait_until_times_out_naming_the_log(tmp_path: Path, marker: str) -> None:
    pid, _ = _spawn_sleeper(tmp_path, marker)
    log = tmp_path / "logs" / "sleeper.log"
    watched = [processes.Watched("sleeper", pid, marker, (log,))]
    with pytest.raises(StackError, match=rf"sleeper not ready after 0.3s; read {log}"):
        processes.wait_until(
            lambda: False, what="sleeper", watched=watched, deadline=time.monotonic() + 0.3, timeout=0.3
        )


# -- ports ------------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_port_open(listener: int) -> None:
    assert processes.port_open("127.0.0.1", listener)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert not processes.port_open("127.0.0.1", port)


def test_up_refuses_a_port_taken_by_a_stranger(
    tmp_path: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = LocalStack(home=tmp_path)
    busy = replace(SINGLE, nodes=(KafkaNode("kafka", 1, listener, listener + 1),))
    monkeypatch.setattr(stack, "_paths", StackPaths(tmp_path, busy))
    monkeypatch.setattr(local_module, "find_java", lambda: Path("/usr/bin/java"))
    with pytest.raises(StackError, match=rf"^port {listener} on 127.0.0.1 \(kafka\) is already in use"):
        stack.up(timeout=5, progress=lambda _line: None)
    assert not (tmp_path / ".stack" / "kafka").exists()  # failed before fetching anything
    assert not list((tmp_path / ".stack").glob("**/*.pid"))


# -- tools ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('java version "1.8.0_292"', 8),
        ("garbage", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert tools.java_major(output) == major


def test_missing_java_is_one_actionable_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    expected = r"^Java 17\+ not found: install a JDK \(e\.g\. apt-get install openjdk-17-jre-headless\)$"
    with pytest.raises(StackError, match=expected):
        tools.find_java()
    with pytest.raises(StackError, match=expected):
        LocalStack(home=tmp_path).up(timeout=1, progress=lambda _line: None)


def _fake_java(directory: Path, version: str) -> Path:
    java = directory / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2020-01-01' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return java


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = _fake_java(tmp_path, "11.0.2")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(StackError, match=rf"^Java 17\+ required, found Java 11 at {java}: install a JDK"):
        tools.find_java()


def test_java_home_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "jdk" / "bin").mkdir(parents=True)
    java = _fake_java(tmp_path / "jdk" / "bin", "21.0.1")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tools.find_java() == java


def test_missing_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match=r"^Maven \(mvn\) not found: .* apt-get install maven"):
        tools.find_mvn()


# -- fetch ------------------------------------------------------------------------------------------


def test_versions_come_from_the_pom() -> None:
    versions = fetch.read_versions(REPO / "infra" / "pom.xml")
    assert versions == fetch.Versions(kafka="4.1.1", apicurio="3.0.9")


def test_a_broken_pom_is_a_stack_error(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project><properties></properties>")
    with pytest.raises(StackError, match="cannot read"):
        fetch.read_versions(pom)
    pom.write_text('<project xmlns="http://maven.apache.org/POM/4.0.0"><properties/></project>')
    with pytest.raises(StackError, match=r"has no <kafka.version> property"):
        fetch.read_versions(pom)


def test_kafka_libs_are_refetched_only_when_the_pom_changes(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path, SINGLE)
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    assert not fetch.kafka_libs_current(paths, pom)
    paths.kafka_libs.mkdir(parents=True)
    (paths.kafka_libs / fetch.STAMP).write_text(hashlib.sha256(pom.read_bytes()).hexdigest() + "\n")
    assert fetch.kafka_libs_current(paths, pom)
    fetch.ensure_kafka_libs(paths, pom, progress=lambda _line: pytest.fail("must not fetch"))
    pom.write_text("<project><!-- new version --></project>")
    assert not fetch.kafka_libs_current(paths, pom)


def test_apicurio_is_unpacked_from_the_local_repository_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_maven() -> Path:
        raise AssertionError("maven must not run when the tarball is cached")

    monkeypatch.setattr(fetch, "find_mvn", no_maven)
    paths = StackPaths(tmp_path, SINGLE)
    tarball = paths.m2 / "io/apicurio/apicurio-registry-app/9.9.9/apicurio-registry-app-9.9.9-all.tar.gz"
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as archive:
        for name in ("apicurio-registry-app-9.9.9-runner.jar", "lib/a.jar"):
            info = tarfile.TarInfo(name)
            info.size = 2
            archive.addfile(info, io.BytesIO(b"PK"))
    lines: list[str] = []
    runner = fetch.ensure_apicurio(paths, "9.9.9", lines.append)
    assert runner == tmp_path / ".stack/apicurio/9.9.9/apicurio-registry-app-9.9.9-runner.jar"
    assert runner.is_file()
    assert (runner.parent / "lib" / "a.jar").is_file()
    assert lines == ["unpacking Apicurio Registry 9.9.9..."]
    assert fetch.ensure_apicurio(paths, "9.9.9", lambda _line: pytest.fail("already unpacked")) == runner


# -- CLI --------------------------------------------------------------------------------------------


def _cli() -> CliRunner:
    return CliRunner()


def test_cli_up_with_an_external_cluster_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.cli import stack as cli

    def explode(*_args: object, **_kwargs: object) -> LocalStack:
        raise AssertionError("must not build a LocalStack")

    monkeypatch.setattr(cli, "LocalStack", explode)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    result = _cli().invoke(cli.app, ["up"])
    assert result.exit_code == 0
    assert "external cluster configured" in result.output
    assert "broker.example:9092" in result.output


def test_cli_stack_error_is_one_red_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.cli import stack as cli

    class Failing:
        def __init__(self, *, cluster: bool) -> None:
            self.cluster = cluster

        def up(self, **_kwargs: object) -> bool:
            raise StackError("kafka on 127.0.0.1:9092 not ready after 1s; read /x/kafka.log")

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)
    monkeypatch.setattr(cli, "LocalStack", Failing)
    result = _cli().invoke(cli.app, ["up", "--timeout", "1"])
    assert result.exit_code == 1
    assert "error: kafka on 127.0.0.1:9092 not ready after 1s; read /x/kafka.log" in result.output
    assert "Traceback" not in result.output


def test_cli_status_lists_components(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.cli import stack as cli

    monkeypatch.setattr(cli, "LocalStack", lambda *, cluster: LocalStack(home=tmp_path, cluster=cluster))
    result = _cli().invoke(cli.app, ["status", "--cluster"])
    assert result.exit_code == 0
    for name in ("kafka-1", "kafka-2", "kafka-3", "registry", "127.0.0.1:19094"):
        assert name in result.output
    assert "running" not in result.output


class _ReplayingRegistry(BaseHTTPRequestHandler):
    """A registry that has not replayed its journal yet: it refuses the first PUTs of the rule the
    journal holds (409) and reads it back only after ``replayed_after`` requests."""

    requests = 0
    replayed_after = 3
    level = "BACKWARD"
    stalls = 0  # PUTs held unanswered past the client's timeout, as while the journal loads

    def _answer(self, status: int, body: dict[str, str]) -> None:
        type(self).requests += 1
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).stalls:
            type(self).stalls -= 1
            time.sleep(0.5)
        self._answer(409, {"message": "A rule named 'COMPATIBILITY' already exists."})

    def do_GET(self) -> None:
        replayed = type(self).requests >= self.replayed_after
        self._answer(200, {"compatibilityLevel": self.level} if replayed else {})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replaying_registry() -> Iterator[str]:
    _ReplayingRegistry.requests = 0
    _ReplayingRegistry.stalls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ReplayingRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_global_compatibility_waits_out_the_journal_replay_of_a_restart(replaying_registry: str) -> None:
    registry.set_global_compatibility(replaying_registry, "BACKWARD", settle_seconds=10.0)
    assert _ReplayingRegistry.requests >= 3  # refused, then read back once replayed


def test_global_compatibility_waits_out_a_registry_that_does_not_answer_while_loading(
    replaying_registry: str,
) -> None:
    _ReplayingRegistry.stalls = 2
    registry.set_global_compatibility(
        replaying_registry, "BACKWARD", settle_seconds=10.0, request_timeout=0.2
    )
    assert _ReplayingRegistry.stalls == 0, "it asked again after the unanswered PUTs"


def test_global_compatibility_refused_for_good_is_an_error(replaying_registry: str) -> None:
    with pytest.raises(StackError, match=r"refused to set global compatibility FULL \(HTTP 409\)"):
        registry.set_global_compatibility(replaying_registry, "FULL", settle_seconds=1.0)


def test_down_wipe_deletes_the_data_and_keeps_the_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.cli import stack as cli

    monkeypatch.setattr(cli, "LocalStack", lambda *, cluster: LocalStack(home=tmp_path, cluster=cluster))
    stack = LocalStack(home=tmp_path)
    paths = StackPaths(tmp_path, SINGLE)
    topic = stack.data_dir / "kafka-1" / "some.topic-0"
    topic.mkdir(parents=True)
    (topic / "00000000000000000000.log").write_bytes(b"x")
    paths.kafka_libs.mkdir(parents=True)
    (paths.kafka_libs / "kafka.jar").write_bytes(b"jar")

    kept = _cli().invoke(cli.app, ["down"])
    assert kept.exit_code == 0 and "nothing was running" in kept.output
    assert topic.exists(), "down without --wipe keeps the data"

    wiped = _cli().invoke(cli.app, ["down", "--wipe"])
    assert wiped.exit_code == 0, wiped.output
    assert "deleted" in wiped.output and "starts empty" in wiped.output
    assert not stack.data_dir.exists()
    assert (paths.kafka_libs / "kafka.jar").exists(), "downloads stay"
