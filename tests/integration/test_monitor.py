"""`streams monitor` against running workers on the real broker, with the agent watch running.

Workers of tests/integration/monitored_app.py (``orders`` fed a steady stream by the test, ``billing``
idle) beat every HEARTBEAT seconds to a heartbeat topic of the test's own; the watch
(``streams run agents.watch:app``) calls an agent down after DOWN_AFTER seconds of silence. Then:

- ``streams monitor --once --json`` lists both agents with their figures;
- ``streams monitor`` runs in tmux, driven with send-keys and read with capture-pane: the agents
  appear, ``orders``' throughput follows the rate the test publishes at, and ``billing``, killed
  with -9, is shown down with its ``agent-down`` alert within its heartbeat bound.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streams import Publisher, Settings, Topic
from streams.events import TaskRequested

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT = 1.0
DOWN_AFTER = 4.0
# From the kill to the alert on screen, beyond the bound: the watch's ticker (a fifth of the bound),
# its exactly-once hand-offs (samples, detections, alerts) and the screen's one-second refresh.
REACTION = 6.0


class Feeder:
    """Publishes to ``orders`` at ``rate`` messages per second (changeable) until stopped."""

    def __init__(self, settings: Settings, topic: Topic[TaskRequested]) -> None:
        self.rate = 20.0
        self._settings = settings
        self._topic = topic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        with Publisher(self._settings) as publisher:
            while not self._stop.is_set():
                started = time.monotonic()
                batch = max(1, round(self.rate / 10))
                for _ in range(batch):
                    task = TaskRequested(task_id=str(self.sent), capability="order", payload="x")
                    publisher.publish(self._topic, task, key=str(self.sent % 16))
                    self.sent += 1
                publisher.flush()
                self._stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))


@dataclass
class Watched:
    prefix: str
    env: dict[str, str]
    feeder: Feeder
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def orders(self) -> str:
        return f"{self.prefix}.orders"

    @property
    def billing(self) -> str:
        return f"{self.prefix}.billing"


def _start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def _until(what: str, within: float, check: Callable[[], Any], every: float = 0.5) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        time.sleep(every)


def _snapshot(watched: Watched) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "streams", "monitor", "--once", "--json", "--timeout", "20"],
        env=watched.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["agent"]: row for row in data["agents"]}


@pytest.fixture(scope="module")
def watched(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    prefix = f"mon{uuid.uuid4().hex[:8]}"
    logs = tmp_path_factory.mktemp("monitor")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "MONITORED_PREFIX": prefix,
        "STREAMS_HEARTBEAT_TOPIC": f"{prefix}.beats",
        "STREAMS_HEARTBEAT_INTERVAL": str(HEARTBEAT),
        "STREAMS_WATCH_APP": f"{prefix}-watch",
        "STREAMS_WATCH_STATUS_TOPIC": f"{prefix}.status",
        "STREAMS_WATCH_ALERTS_TOPIC": f"{prefix}.alerts",
        "STREAMS_WATCH_WORKFLOW_STATUS_TOPIC": f"{prefix}.workflows",
        "STREAMS_WATCH_DOWN_AFTER": str(DOWN_AFTER),
    }
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    feeder = Feeder(settings, Topic(f"{prefix}.orders", value=TaskRequested, partitions=2))
    watched = Watched(prefix, env, feeder)
    try:
        # The watch first: it starts from the newest beat, so it must be there for the workers' first.
        watched.processes["watch"] = _start(env, logs / "watch.log", "run", "agents.watch:app")
        _until("the watch's status topic", 90, lambda: _status_topic_exists(watched), every=1.0)
        app = "tests.integration.monitored_app:app"
        for agent in ("orders", "billing"):
            watched.processes[agent] = _start(env, logs / f"{agent}.log", "run", app, "--agent", agent)
        both = {watched.orders, watched.billing}
        _until(
            "both agents on the status topic", 90, lambda: both <= set(_rows(_snapshot(watched))), every=1.0
        )
        feeder.start()
        yield watched
    finally:
        feeder.stop()
        for process in watched.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in watched.processes.items():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if name == "watch":
                print((logs / "watch.log").read_text()[-3000:])


def _status_topic_exists(watched: Watched) -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "streams", "monitor", "--once", "--timeout", "5"],
        env=watched.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def test_once_json_prints_every_running_agent_with_its_figures(watched: Watched) -> None:
    def busy() -> dict[str, Any] | None:
        rows = _rows(_snapshot(watched))
        orders = rows.get(watched.orders)
        return rows if orders and orders["throughput"] > 0 and orders["latency_p50_ms"] else None

    rows = _until("orders to report throughput and latency", 60, busy, every=1.0)
    orders, billing = rows[watched.orders], rows[watched.billing]
    assert (orders["health"], orders["instances"], orders["workers"]) == ("ok", 1, 1)
    assert billing["health"] == "ok" and billing["throughput"] == 0 and billing["alerts"] == []
    assert orders["latency_p50_ms"] >= 1.5  # its handler sleeps 2 ms
    assert orders["silent_s"] < DOWN_AFTER and orders["last_seen"].endswith("+00:00")
    assert {"summary", "agents", "alerts", "at"} <= set(_snapshot(watched))


@dataclass
class Tmux:
    """One tmux server of the test's own (its own socket), holding one shell of fixed size."""

    socket: str
    width: int = 150
    height: int = 40

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30, check=True
        )
        return result.stdout

    def start(self, env: dict[str, str]) -> None:
        self.run(
            "new-session", "-d", "-s", "monitor", "-x", str(self.width), "-y", str(self.height),
            "env", *(f"{k}={v}" for k, v in env.items() if re.fullmatch(r"[A-Z_][A-Z0-9_]*", k)),
            "bash", "--norc", "--noprofile",
        )  # fmt: skip

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "monitor", *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "monitor")

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30, check=False
        )


def _row(screen: str, agent: str) -> list[str] | None:
    """The cells of ``agent``'s row: AGENT HEALTH INST MSG/S ... (split on blanks)."""
    for line in screen.splitlines():
        cells = line.split()
        if cells and cells[0] == agent:
            return cells
    return None


def _prompt_back(screen: str) -> str | None:
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    return screen if lines and lines[-1].endswith(("$", "#")) else None


def _throughput(screen: str, agent: str) -> float | None:
    header = next((line.split() for line in screen.splitlines() if line.startswith("AGENT")), None)
    cells = _row(screen, agent)
    if header is None or cells is None:
        return None
    text = cells[header.index("MSG/S")]
    scale = {"k": 1e3, "M": 1e6}.get(text[-1], 1.0)
    return float(text.rstrip("kM")) * scale


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_the_live_view_shows_agents_their_throughput_and_a_killed_agent_down_and_alerted(
    watched: Watched, tmp_path: Path
) -> None:
    tmux = Tmux(f"streams-test-{uuid.uuid4().hex[:8]}")
    tmux.start(watched.env)
    try:
        tmux.keys(f"cd {ROOT} && {sys.executable} -m streams monitor --interval 1", "Enter")
        screen = _until(
            "both agents on the screen",
            60,
            lambda: (s := tmux.screen()) and _row(s, watched.orders) and _row(s, watched.billing) and s,
        )
        assert screen.startswith("streams monitor · ")
        assert re.search(r"^\d+ agents · ", screen.splitlines()[1])
        assert (_row(screen, watched.billing) or [])[1] == "ok"

        # The throughput shown follows the rate the test publishes at: ~20/s, then ~100/s.
        _until(
            "orders at about 20 msg/s",
            60,
            lambda: 10 <= (_throughput(tmux.screen(), watched.orders) or 0) <= 30,
        )
        watched.feeder.rate = 100.0
        _until(
            "orders at about 100 msg/s", 60, lambda: (_throughput(tmux.screen(), watched.orders) or 0) >= 70
        )

        billing = watched.processes["billing"]
        billing.send_signal(signal.SIGKILL)
        billing.wait(timeout=30)
        killed = time.monotonic()

        def down_and_alerted() -> str | None:
            s = tmux.screen()
            row = _row(s, watched.billing)
            alerted = re.search(rf"CRITICAL\s+agent-down\s+since \S+\s+{re.escape(watched.billing)}: ", s)
            return s if row and row[1] == "down" and row[-1] == "agent-down" and alerted else None

        screen = _until(
            "billing shown down and alerted", DOWN_AFTER + REACTION + 10, down_and_alerted, every=0.2
        )
        took = time.monotonic() - killed
        (tmp_path / "screen.txt").write_text(screen)
        assert took <= DOWN_AFTER + REACTION, f"shown down {took:.1f} s after the kill"
        assert took >= DOWN_AFTER - HEARTBEAT - 0.5, f"called down after {took:.1f} s: before its bound"
        assert (_row(screen, watched.orders) or [])[1] == "ok"  # the other agent is not dragged down
        assert "1 down" in screen.splitlines()[1] and "(1 critical)" in screen.splitlines()[1]

        # Stopped on purpose (SIGTERM: its final beat says STOPPED): shown stopped, never alerted down.
        orders = watched.processes["orders"]
        orders.send_signal(signal.SIGTERM)
        assert orders.wait(timeout=60) == 0
        _until(
            "orders shown stopped",
            30,
            lambda: (_row(tmux.screen(), watched.orders) or ["", ""])[1] == "stopped",
        )
        time.sleep(DOWN_AFTER + REACTION)
        screen = tmux.screen()
        assert (_row(screen, watched.orders) or ["", ""])[1] == "stopped"
        assert not re.search(rf"agent-down\s+since \S+\s+{re.escape(watched.orders)}: ", screen), screen

        tmux.keys("C-c")
        after = _until("the shell back after Ctrl-C", 15, lambda: _prompt_back(tmux.screen()))
        assert "Traceback" not in after and "streams monitor ·" not in after  # the screen was restored
    finally:
        tmux.close()
