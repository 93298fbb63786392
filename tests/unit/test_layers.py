"""The architecture as tests: one-way layers (import-linter, also in `make lint`) and every Kafka client
built in transport/ from Settings."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

STREAMS = Path(__file__).resolve().parents[2] / "streams"
CLIENT_CLASSES = {"Consumer", "Producer", "AdminClient", "AsyncProducer"}
# The local stack launcher probes the broker it started before any Settings apply to it.
ALLOWED = {STREAMS / "transport", STREAMS / "stack"}


def test_kafka_clients_are_only_constructed_in_transport() -> None:
    offenders = []
    for path in STREAMS.rglob("*.py"):
        if any(allowed in path.parents for allowed in ALLOWED):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in CLIENT_CLASSES
            ):
                offenders.append(f"{path.relative_to(STREAMS.parent)}:{node.lineno} {node.func.id}(...)")
    assert offenders == [], "build clients with streams.transport.clients instead"


def test_layers_contract_holds() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"  # import-linter, a dev dependency
    result = subprocess.run(
        [str(lint_imports)], cwd=STREAMS.parent, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "one-way layers KEPT" in result.stdout


def test_mypy_rejects_a_misspelt_agent_option(tmp_path: Path) -> None:
    user_code = tmp_path / "user_app.py"
    user_code.write_text(
        "from streams import App, Context, ExactlyOnce\n"
        "from streams.events import TaskRequested\n"
        "app = App('typo')\n"
        "tasks = app.topic('typo.tasks', value=TaskRequested)\n"
        "@app.agent(tasks, concurency=8, guarantee=ExactlyOnce())\n"
        "async def handle(task: TaskRequested, ctx: Context) -> None: ...\n"
    )
    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run(
        [str(mypy), "--strict", "--no-incremental", str(user_code)],
        cwd=STREAMS.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert 'Unexpected keyword argument "concurency"' in result.stdout
