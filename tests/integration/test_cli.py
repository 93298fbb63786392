"""The `streams` command as a user runs it: publish -> tail round trip and bad input."""

from __future__ import annotations

import json
from pathlib import Path

from streams import Settings
from tests.integration._kafka import create_topic, message_count


def _write_app(tmp_path: Path, topic: str) -> str:
    (tmp_path / "cli_app_under_test.py").write_text(
        "from streams import App\n"
        "from streams.events import TaskRequested\n"
        "app = App('cli-test')\n"
        f"tasks = app.topic({topic!r}, value=TaskRequested, partitions=2)\n"
    )
    return "cli_app_under_test:app"


def test_apply_publish_tail_round_trip(cli, settings: Settings, topic_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_ref = _write_app(tmp_path, topic_name)
    applied = cli("topics", "apply", app_ref, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert "created" in applied.stdout
    again = cli("topics", "apply", app_ref, cwd=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stdout

    value = {"task_id": "t-1", "capability": "research", "payload": '{"q": "kafka"}', "priority": 5}
    published = cli(
        "publish", topic_name, "--key", "t-1", "--value", json.dumps(value), "--correlation-id", "corr-cli"
    )
    assert published.returncode == 0, published.stderr
    assert "published 1 event(s)" in published.stdout

    tailed = cli("tail", topic_name, "--from-beginning", "--limit", "1", "--json", "--timeout", "20")
    assert tailed.returncode == 0, tailed.stderr
    [line] = tailed.stdout.strip().splitlines()
    message = json.loads(line)
    assert message["key"] == "t-1"
    assert message["value"] == {**value, "requested_by": None, "deadline": None, "context": {}}
    assert message["headers"]["correlation-id"] == "corr-cli"
    assert message["headers"]["message-id"]
    assert message["error"] is None

    human = cli("tail", topic_name, "--from-beginning", "--limit", "1", "--timeout", "20")
    assert human.returncode == 0 and "key=t-1" in human.stdout and "research" in human.stdout


def test_file_publish_validates_every_line_before_sending(
    cli,
    settings: Settings,
    topic_name: str,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    app_ref = _write_app(tmp_path, topic_name)
    assert cli("topics", "apply", app_ref, cwd=tmp_path).returncode == 0
    good = {"task_id": "a", "capability": "c", "payload": "{}"}
    lines = [json.dumps({**good, "task_id": f"t{i}"}) for i in range(5)]
    lines.insert(3, json.dumps({**good, "priority": "urgent"}))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")

    bad = cli("publish", topic_name, "--file", str(events), "--key-field", "task_id")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: line 4:")
    assert "priority" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr + bad.stdout
    assert message_count(settings, topic_name) == 0

    del lines[3]
    events.write_text("\n".join(lines) + "\n")
    ok = cli("publish", topic_name, "--file", str(events), "--key-field", "task_id")
    assert ok.returncode == 0, ok.stderr
    assert "published 5 event(s)" in ok.stdout
    assert message_count(settings, topic_name) == 5


def test_user_mistakes_are_one_line_errors(cli, settings: Settings, topic_name: str) -> None:  # type: ignore[no-untyped-def]
    create_topic(settings, topic_name)
    cases = {
        ("publish", topic_name, "--value", "{not json"): "not valid JSON",
        ("publish", topic_name, "--value", "{}"): "no schema registered",
        ("publish", topic_name): "exactly one of --value or --file",
        ("tail", "no-such-topic-" + topic_name, "--limit", "1"): "does not exist",
        ("topics", "apply", "no_such_module:app"): "cannot import",
    }
    for args, expected in cases.items():
        result = cli(*args)
        assert result.returncode != 0, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, args
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    assert message_count(settings, topic_name) == 0
