"""The workflows scenario: N three-step durable workflows, each started and awaited by a client.

Unlike the relay scenarios nothing is preloaded: a driver process (the client) starts the workflows,
at most ``concurrency`` outstanding, and awaits each one's result; the servers run in processes of
their own. Per row:

- ``streams``: one worker process runs the engine of workflow ``three_steps`` and the specialists
  ``step1``..``step3`` (``run_agents``), exactly-once; the driver uses :class:`streams.Client`.
- ``streams-alo``: the same, with the specialists at their default guarantee, at-least-once: a step
  may run more than once after a crash, and the engine (still exactly-once) journals its answer once,
  like a retried Restate service call.
- ``restate`` / ``restate-run``: a fresh Restate server (from npm, data in this run's directory), a
  Python service on hypercorn serving the same steps with the ``restate-sdk`` (service calls, or
  ``ctx.run`` blocks), and a driver calling the server's HTTP ingress.

The clock runs from the driver's ``START`` to its ``END`` line, after an untimed warm-up (group joins,
connections, the first registrations). Latency is per workflow, from the start call to its result.
Every result is compared with the right answer; one wrong or missing fails the row. CPU is the
servers' (the worker; or the Restate server plus the service) over exactly that window, and the
driver's on its own. The Kafka broker's is read too (from /proc, never signalled; it is shared, so it
also counts whatever else uses the broker then: the Restate rows show that background). Only
processes started here are signalled.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.harness import REPO, Harness, cpu_seconds, peak_rss_mb, start_profiler, stop_process, tail

RESTATE_PYTHON = REPO / "bench" / ".venv-restate" / "bin" / "python"
RESTATE_PREFIX = REPO / "bench" / ".restate"  # npm install --prefix bench/.restate ...
RESTATE_INSTALL_HINT = (
    "npm install --prefix bench/.restate @restatedev/restate-server@1.7.12 && "
    ".venv/bin/python -m venv bench/.venv-restate && "
    "bench/.venv-restate/bin/pip install -r bench/requirements-restate.txt"
)
WARMUP = 50  # untimed workflows before the timed ones (fewer at low concurrency: 10 per lane)


@dataclass(frozen=True)
class WorkflowContender:
    name: str
    side: Literal["streams", "restate"]
    how: str  # shown in the notes column
    mode: str = ""  # streams: the steps' guarantee ("eos", "alo"); restate: "calls" or "runs" (ctx.run)


WORKFLOW_CONTENDERS = [
    WorkflowContender(
        "streams",
        "streams",
        "engine + 3 specialists in 1 worker process, exactly-once (transactions), 6 partitions a topic",
        mode="eos",
    ),
    WorkflowContender(
        "streams-alo",
        "streams",
        "as streams, the 3 specialists at-least-once (their default); the engine exactly-once",
        mode="alo",
    ),
    WorkflowContender(
        "restate",
        "restate",
        "3 durable service calls (ctx.service_call); server + 1 hypercorn service process",
        mode="calls",
    ),
    WorkflowContender(
        "restate-run",
        "restate",
        "3 ctx.run steps in the workflow; server + 1 hypercorn service process",
        mode="runs",
    ),
]


@dataclass
class WorkflowResult:
    contender: str
    workflows: int
    concurrency: int
    status: str = "ok"
    seconds: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu: float | None = None  # CPU seconds of the server processes over the timed window
    driver_cpu: float | None = None
    broker_cpu: float | None = None  # the Kafka broker's, whoever used it
    server_rss_mb: float | None = None  # peak RSS of the server processes, summed
    note: str = ""

    @property
    def rate(self) -> float | None:
        return self.workflows / self.seconds if self.status == "ok" and self.seconds else None


def restate_server() -> Path | None:
    """The restate-server binary npm installed (the platform package's, not the node wrapper)."""
    packages = RESTATE_PREFIX / "node_modules" / "@restatedev"
    found = sorted(packages.glob("restate-server-*/bin/restate-server"))
    return found[0] if found else None


def missing(contender: WorkflowContender) -> str | None:
    """Why this contender cannot run here, or None."""
    if contender.side == "streams":
        return None
    if restate_server() is None:
        return f"no restate-server under bench/.restate; install it: {RESTATE_INSTALL_HINT}"
    if not RESTATE_PYTHON.exists():
        return f"bench/.venv-restate does not exist; {RESTATE_INSTALL_HINT}"
    probe = subprocess.run(
        [str(RESTATE_PYTHON), "-c", "import restate, hypercorn, aiohttp"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"bench/.venv-restate cannot import the SDK ({last}); {RESTATE_INSTALL_HINT}"
    return None


def versions(contenders: list[WorkflowContender]) -> dict[str, str]:
    """What the header line shows for the Restate rows."""
    if not any(c.side == "restate" for c in contenders):
        return {}
    server = restate_server()
    assert server is not None
    version = subprocess.run(
        [str(server), "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout.split()
    code = (
        "import importlib.metadata as m; "
        "print(' '.join(m.version(d) for d in ('restate-sdk', 'hypercorn', 'aiohttp')))"
    )
    sdk = subprocess.run(
        [str(RESTATE_PYTHON), "-c", code], capture_output=True, text=True, timeout=60, check=False
    ).stdout.split() or ["?", "?", "?"]
    return {
        "restate-server": version[-1] if version else "?",
        "restate-sdk": sdk[0],
        "hypercorn": sdk[1],
        "aiohttp": sdk[2],
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class _Processes:
    """The processes one row started, stopped in reverse order whatever happens."""

    workdir: Path
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    unclean: list[str] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start server ``name``, its output to ``<name>.log`` in the row's directory."""
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            child = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.servers.append(child)
        self.logs.append(log)
        return child

    def stop(self) -> None:
        for child, log in reversed(list(zip(self.servers, self.logs, strict=True))):
            if not stop_process(child):
                self.unclean.append(log.stem)


class WorkflowBench:
    """Runs the rows of the workflows scenario inside the run of ``harness`` (its directory, broker,
    registry and name prefix, so :meth:`Harness.cleanup` removes our topics and groups too)."""

    def __init__(self, harness: Harness, *, timeout: float, profile: bool, keep: bool) -> None:
        self.harness = harness
        self.broker = _listening_pid(int(harness.bootstrap.rsplit(":", 1)[-1]))
        self.timeout = timeout
        self.profile = profile
        self.keep = keep
        self._runs = 0

    def run(self, contender: WorkflowContender, workflows: int, concurrency: int) -> WorkflowResult:
        self._runs += 1
        base = f"{self.harness.prefix}{contender.name}.wf{self._runs}"
        rundir = self.harness.workdir / f"{contender.name}.workflows.{self._runs}"
        rundir.mkdir()
        result = WorkflowResult(contender.name, workflows, concurrency)
        options: dict[str, Any] = {}
        if contender.side == "streams":
            options = {
                "bootstrap": self.harness.bootstrap,
                "registry": self.harness.registry_url,
                "app": base,
                "steps": contender.mode,
            }
        else:
            options = {
                "mode": contender.mode,
                **{f"{port}_port": _free_port() for port in ("ingress", "admin", "fabric", "service")},
            }
        config = rundir / "config.json"
        asked = {
            "run": base,
            "workflows": workflows,
            "concurrency": concurrency,
            "warmup": min(WARMUP, 10 * concurrency),
            "timeout": 120.0,
            "options": options,
        }
        config.write_text(json.dumps(asked), encoding="utf-8")
        processes = _Processes(rundir)
        profiler: subprocess.Popen[bytes] | None = None
        try:
            if contender.side == "streams":
                servers = self._start_streams(processes, config)
                python, module = sys.executable, "bench.contenders.streams_workflows"
            else:
                servers = self._start_restate(processes, config, options, rundir)
                python, module = str(RESTATE_PYTHON), "bench.contenders.restate_workflows"
            if self.profile and contender.side == "streams":
                profiler = start_profiler(servers[0].pid, rundir / "worker.pyspy.txt")
            self._drive(result, [python, "-m", module, "driver", str(config)], processes, rundir)
        except Exception as exc:  # noqa: BLE001 - reported in the row; the processes still stop
            result.status = f"failed: {exc!r}"
        finally:
            processes.stop()
            if processes.unclean:
                killed = ", ".join(processes.unclean)
                result.note = f"{result.note}; {killed} killed after SIGTERM".lstrip("; ")
            if profiler is not None:
                try:
                    profiler.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    profiler.kill()
            if contender.side == "restate" and not self.keep:
                shutil.rmtree(rundir / "restate-data", ignore_errors=True)
        if result.status != "ok":
            logs = " | ".join(
                f"{log.stem}: {tail(log, 3)}"
                for log in [*processes.logs, rundir / "driver.log"]
                if log.exists()
            )
            result.note = f"{result.note}; {logs}".lstrip("; ")
        return result

    # ----------------------------------------------------------------- the servers

    def _start_streams(self, processes: _Processes, config: Path) -> list[subprocess.Popen[bytes]]:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        return [
            processes.start(
                "worker",
                [sys.executable, "-m", "bench.contenders.streams_workflows", "worker", str(config)],
                env,
            )
        ]

    def _start_restate(
        self, processes: _Processes, config: Path, options: dict[str, Any], rundir: Path
    ) -> list[subprocess.Popen[bytes]]:
        binary = restate_server()
        assert binary is not None
        env = dict(
            os.environ,
            RESTATE_INGRESS__BIND_ADDRESS=f"127.0.0.1:{options['ingress_port']}",
            RESTATE_ADMIN__BIND_ADDRESS=f"127.0.0.1:{options['admin_port']}",
            RESTATE_BIND_ADDRESS=f"127.0.0.1:{options['fabric_port']}",
            RESTATE_DISABLE_TELEMETRY="true",
            RESTATE_LOG_DISABLE_ANSI_CODES="true",
        )
        server = processes.start(
            "restate-server",
            [
                str(binary),
                "--no-logo",
                "--listen-mode",
                "tcp",
                "--node-name",
                "bench",
                "--base-dir",
                str(rundir / "restate-data"),
            ],
            env,
        )
        _await_http(f"http://127.0.0.1:{options['admin_port']}/health", server, within=60)
        service_env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        service = processes.start(
            "service",
            [str(RESTATE_PYTHON), "-m", "bench.contenders.restate_workflows", "service", str(config)],
            service_env,
        )
        return [server, service]

    # ----------------------------------------------------------------- the measurement

    def _drive(self, result: WorkflowResult, argv: list[str], processes: _Processes, rundir: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        servers, names = processes.servers, [log.stem for log in processes.logs]
        with (rundir / "driver.log").open("w", encoding="utf-8") as log:
            driver = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=_lines, args=(driver, lines), daemon=True).start()
            deadline = time.monotonic() + self.timeout
            start: tuple[list[float], float, float | None] | None = None
            outcome: dict[str, Any] | None = None
            try:
                while outcome is None:
                    try:
                        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        result.status = f"timeout: no result after {self.timeout:.0f} s"
                        return
                    if line is None:
                        result.status = f"failed: the driver exited with {driver.wait()} before its result"
                        return
                    for child in servers:
                        if child.poll() is not None:
                            result.status = f"failed: a server exited with {child.returncode}"
                            return
                    if line.startswith("START "):
                        start = (
                            [cpu_seconds(c.pid) for c in servers],
                            cpu_seconds(driver.pid),
                            self._broker_cpu(),
                        )
                    elif line.startswith("END ") and start is not None:
                        spent = [cpu_seconds(c.pid) - s for c, s in zip(servers, start[0], strict=True)]
                        result.server_cpu = sum(spent)
                        if len(servers) > 1:
                            per_k = 1000 / result.workflows
                            result.note = "server CPU-s / 1k wf: " + ", ".join(
                                f"{name} {s * per_k:.2f}" for name, s in zip(names, spent, strict=True)
                            )
                        result.driver_cpu = cpu_seconds(driver.pid) - start[1]
                        broker = self._broker_cpu()
                        if broker is not None and start[2] is not None:
                            result.broker_cpu = broker - start[2]
                        result.server_rss_mb = sum(peak_rss_mb(c.pid) for c in servers)
                    elif line.startswith("RESULT "):
                        outcome = json.loads(line.removeprefix("RESULT "))
            finally:
                stop_process(driver)
        _judge(result, outcome)

    def _broker_cpu(self) -> float | None:
        if self.broker is None:
            return None
        try:
            return cpu_seconds(self.broker)
        except OSError:
            return None


def _judge(result: WorkflowResult, outcome: dict[str, Any]) -> None:
    """Fill ``result`` from the driver's report; a wrong, failed or missing workflow fails the row."""
    if outcome.get("failed"):
        result.status = f"failed in the {outcome['failed']}: {outcome.get('examples')}"
        return
    result.seconds = outcome["seconds"]
    result.p50_ms, result.p99_ms = outcome["p50_ms"], outcome["p99_ms"]
    problems = []
    if outcome["wrong"]:
        problems.append(f"{outcome['wrong']} wrong results")
    if outcome["errors"]:
        problems.append(f"{outcome['errors']} failed")
    if outcome["completed"] != result.workflows and not problems:
        problems.append(f"{outcome['completed']} of {result.workflows} completed")
    if problems:
        result.status = f"failed: {', '.join(problems)} (e.g. {outcome['examples'][:1]})"
    else:
        result.note = f"{result.note}; {result.workflows:,} results, all right".lstrip("; ")


def _lines(child: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        at = line.find(" ")
        if line[:at] in ("START", "END", "RESULT"):
            lines.put(line.rstrip("\n"))
    lines.put(None)


def _listening_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:``port`` (the broker), if this user may see it."""
    try:
        listing = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    found = re.search(r"pid=(\d+)", listing)
    return int(found[1]) if found else None


def _await_http(url: str, server: subprocess.Popen[bytes], within: float) -> None:
    """Until ``url`` answers 200 (the server is up); fails if the server exits first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within:.0f} s")


HEADERS = [
    "contender",
    "workflows",
    "outstanding",
    "seconds",
    "workflows/s",
    "ours ÷ this",
    "p50 ms",
    "p99 ms",
    "server CPU-s / 1k wf",
    "driver CPU-s / 1k wf",
    "broker CPU-s / 1k wf",
    "server peak RSS MB",
    "notes",
]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def rows(results: list[WorkflowResult]) -> list[list[str]]:
    """Table rows; ``ours ÷ this`` compares workflows/s with ours at the same concurrency."""
    ours = {r.concurrency: r.rate for r in results if r.contender == "streams" and r.rate}
    table = []
    for r in results:
        ratio = None if r.rate is None or r.concurrency not in ours else ours[r.concurrency] / r.rate
        per_k = 1000 / r.workflows
        table.append(
            [
                r.contender,
                f"{r.workflows:,}",
                str(r.concurrency),
                _fmt(r.seconds, ".2f"),
                _fmt(r.rate, ".1f" if r.rate is not None and r.rate < 10 else ",.0f"),
                "-" if ratio is None else f"{ratio:.2f}x",
                _fmt(r.p50_ms, ",.0f"),
                _fmt(r.p99_ms, ",.0f"),
                _fmt(None if r.server_cpu is None else r.server_cpu * per_k, ".2f"),
                _fmt(None if r.driver_cpu is None else r.driver_cpu * per_k, ".2f"),
                _fmt(None if r.broker_cpu is None else r.broker_cpu * per_k, ".2f"),
                _fmt(r.server_rss_mb, ".0f"),
                r.note if r.status == "ok" else f"{r.status}: {r.note[-300:]}",
            ]
        )
    return table


def markdown(results: list[WorkflowResult]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * len(HEADERS)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows(results)]
    return "\n".join(lines)
