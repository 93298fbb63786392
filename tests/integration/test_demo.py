"""README's first command, `make demo` (scripts/demo), on the real broker as a script runs it: no terminal
(so `streams monitor --once` instead of the live view), the stack step skipped because the cluster is
given, and names of the test's own (the supervisor app, the watch and its topics, the heartbeats), so
nothing collides with other users of the cluster. Then `scripts/demo stop` ends every worker it started.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from streams import Settings

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 6  # cases fed, at RATE a second
RATE = 3
WORKERS = ("watch", "triage", "planner", "research", "experts")  # processes; experts: legal, analytics


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody reaped yet has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel, which cannot tell a zombie
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat[stat.rindex(")") + 2] != "Z"


def _run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_demo_runs_a_supervisor_system_feeds_it_cases_says_how_to_follow_one_and_stops_it(
    settings: Settings, tmp_path: Path
) -> None:
    prefix = f"demo{uuid.uuid4().hex[:8]}"
    state = tmp_path / "demo"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "SUPERVISOR_APP": prefix,
        "STREAMS_HEARTBEAT_TOPIC": f"{prefix}.beats",
        "STREAMS_WATCH_APP": f"{prefix}-watch",
        "STREAMS_WATCH_STATUS_TOPIC": f"{prefix}.status",
        "STREAMS_WATCH_ALERTS_TOPIC": f"{prefix}.alerts",
        "STREAMS_WATCH_WORKFLOW_STATUS_TOPIC": f"{prefix}.workflows",
        "STREAMS_DEMO_DIR": str(state),
        "STREAMS_DEMO_SECONDS": str(SECONDS),
        "STREAMS_DEMO_RATE": str(RATE),
    }
    env.pop("COLUMNS", None)
    pids: dict[str, int] = {}
    try:
        demo = _run(env, str(ROOT / "scripts" / "demo"), timeout=80)
        out = demo.stdout
        assert demo.returncode == 0, out + demo.stderr
        pids = {
            name: int(pid)
            for name, pid in (line.split() for line in (state / "pids").read_text().splitlines())
        }
        assert set(pids) == {*WORKERS, "cases"}
        assert f"using the cluster at {settings.kafka_bootstrap_servers}" in out  # no stack started
        for name in WORKERS:
            assert f"  {name} ready (pid {pids[name]}, http://127.0.0.1:" in out
            assert _running(pids[name]), f"{name} is not running after the demo"
        assert not _running(pids["cases"]), "the feeder is bounded: it has ended"

        fed = re.search(r"cases: (\d+) started over [0-9.]+ s; (\d+) completed, 0 failed, 0 unfinished", out)
        assert fed and int(fed[1]) == int(fed[2]) == SECONDS * RATE, out
        # The summary of `streams monitor --once`: each agent up with its one worker. Not necessarily
        # `ok`: on a loaded machine a specialist's lag may really grow for a few beats while the
        # cases pass, which raises `lag-growing`.
        for agent in ("triage", "plan", "research", "legal", "analytics", "synthesise"):
            assert re.search(rf"^{prefix}\.{agent}\s+(ok|alert)\s+1/1\s", out, re.MULTILINE), out

        show = re.search(
            r"\S+/streams workflow show agents\.supervisor:app triage (case-[0-9a-f]+-\d+)$", out, re.M
        )
        trace = re.search(r"\S+/streams trace ([0-9a-f]{32}) --app agents\.supervisor:app$", out, re.M)
        assert show and trace, out
        assert "make demo-stop (or scripts/demo stop)" in out
        streams = (sys.executable, "-m", "streams")
        shown = _run(env, *streams, "workflow", "show", "agents.supervisor:app", "triage", show[1], "--json")
        assert shown.returncode == 0, shown.stderr
        run = json.loads(shown.stdout)
        assert (run["workflow_id"], run["status"], run["correlation_id"]) == (show[1], "completed", trace[1])
        names = [step["name"] for step in run["steps"]]
        assert names[0] == "plan" and names[-1] == "synthesise", names
        assert set(names[1:-1]) <= {"research", "legal", "analytics"}, names
        assert all(step["status"] == "succeeded" for step in run["steps"])
        traced = _run(
            env, sys.executable, "-m", "streams", "trace", trace[1], "--app", "agents.supervisor:app"
        )
        assert traced.returncode == 0 and f"{prefix}.synthesise.requests" in traced.stdout, traced.stderr
    finally:
        stop = _run(env, str(ROOT / "scripts" / "demo"), "stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "stopped watch:" in stop.stdout and "is not the demo's: left alone" in stop.stdout
    still = [f"{name} ({pid})" for name, pid in pids.items() if _running(pid)]
    assert not still, f"still running after scripts/demo stop: {still}"
    assert not (state / "pids").exists()
