"""`streams state get|scan` on the real broker: tables a running agent wrote, read back from outside.

The command runs in this process (`streams.cli.main`), so it can name the app built by the test.
"""

from __future__ import annotations

import json
import sys
import uuid

import pytest
from confluent_kafka import Producer

from streams import App, Context, ExactlyOnce, Publisher, Settings
from streams.admin import TopicAdmin
from streams.cli import main
from streams.events import MetricSample, TaskRequested
from streams.serde.registry import ConfluentRegistry
from tests._records import count_up, sample
from tests.integration._agents import eventually, running

APP_REF = f"{__name__}:app_under_test"


def _state(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["state", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads its settings from the environment, as a user's shell gives them."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", settings.schema_registry_url)


async def test_scan_and_get_read_the_latest_committed_value_of_each_key(
    settings: Settings,
    registry: ConfluentRegistry,
    topic_name: str,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = App(f"state-{topic_name[-8:]}", settings)
    tasks = app.topic(topic_name, value=TaskRequested, partitions=2)
    counts = app.table("counts", value=MetricSample)
    blobs = app.table("blobs", value=MetricSample, key=bytes)
    handled: list[str] = []

    # exactly-once: the changelog is written in transactions, so the reader must skip their markers.
    @app.agent(tasks, concurrency=8, tables=[counts, blobs], guarantee=ExactlyOnce())
    async def count(task: TaskRequested, ctx: Context) -> None:
        key = str(ctx.key)
        if task.payload == "delete":
            ctx.table(counts).delete(key)
        else:
            ctx.table(counts).update(key, count_up)
            ctx.table(blobs).set(b"\xff" + key.encode(), sample("blob", 1))
        handled.append(task.task_id)

    monkeypatch.setattr(sys.modules[__name__], "app_under_test", app, raising=False)
    TopicAdmin(settings, registry).apply([tasks])
    # Four updates of k0..k4 each; k4 is deleted last (one key is handled in order).
    batch = [(f"k{i % 5}", TaskRequested(task_id=f"t{i}", capability="c", payload="")) for i in range(20)]
    batch.append(("k4", TaskRequested(task_id="t-delete", capability="c", payload="delete")))
    with Publisher(settings, registry) as publisher:
        for key, task in batch:
            publisher.publish(tasks, task, key=key)
    async with running(app):
        await eventually(lambda: len(handled) == len(batch), what="every task handled")

    code, out, err = _state(capsys, "scan", APP_REF, "counts", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert {row["key"]: row["value"]["value"] for row in document["rows"]} == {f"k{k}": 4.0 for k in range(4)}
    assert document["total"] == 4 and document["partitions"] == [0, 1]
    # Exactly-once logs the last write of each key per transaction: at least one record per key (the
    # tombstone included), at most one per write.
    assert 5 <= document["records"] <= 21
    partition_of = {row["key"]: row["partition"] for row in document["rows"]}

    code, out, _ = _state(capsys, "scan", APP_REF, "counts")
    assert code == 0
    assert all(f"│ k{k} " in out for k in range(4)) and "k4" not in out.split("rows;")[0]
    assert f"4 rows; agent count, {document['records']} records of" in out

    code, out, _ = _state(capsys, "get", APP_REF, "counts", "k1", "--json")
    assert (code, json.loads(out)["value"]) == (0, 4.0)
    code, out, err = _state(capsys, "get", APP_REF, "counts", "k4", "--json")
    assert (code, out) == (1, "null\n")
    assert err.strip() == "no key 'k4' in table counts (agent count: 4 rows in partitions 0, 1)"

    some = partition_of["k0"]
    code, out, _ = _state(capsys, "scan", APP_REF, "counts", "--json", "--partition", str(some))
    rows = json.loads(out)["rows"]
    assert code == 0 and rows and {row["partition"] for row in rows} == {some}

    code, out, _ = _state(capsys, "scan", APP_REF, "blobs", "--json", "--limit", "2")
    document = json.loads(out)
    assert [row["key"] for row in document["rows"]] == ["hex:ff6b30", "hex:ff6b31"]
    assert document["total"] == 5, "deleting k4 from counts left its blob"
    code, out, _ = _state(capsys, "get", APP_REF, "blobs", "hex:ff6b33", "--json")
    assert (code, json.loads(out)["name"]) == (0, "blob")

    code, out, err = _state(capsys, "scan", APP_REF, "nope")
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"error: app {app.name} has no table nope; tables: blobs (agent count), counts (agent count)"
    )

    # An aborted transaction on the changelog changes nothing: only committed records are read.
    changelog = app.agents["count"].changelog(counts)
    with Publisher(settings, registry) as publisher:
        payload = publisher.encoder(changelog)(sample("count", 99))
    producer = Producer({**settings.producer_config(), "transactional.id": f"abort-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(changelog.name, value=payload, key=b"k0", partition=partition_of["k0"])
    producer.produce(changelog.name, value=None, key=b"k1", partition=partition_of["k1"])
    producer.flush(30)
    producer.abort_transaction(30)
    code, out, _ = _state(capsys, "scan", APP_REF, "counts", "--json")
    assert code == 0
    assert {row["key"]: row["value"]["value"] for row in json.loads(out)["rows"]} == {
        f"k{k}": 4.0 for k in range(4)
    }


def test_a_table_whose_agent_never_ran_is_one_error_line(
    settings: Settings,
    topic_name: str,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = App(f"state-{topic_name[-8:]}", settings)
    counts = app.table("counts", value=MetricSample)

    @app.agent(app.topic(topic_name, value=TaskRequested), tables=[counts])
    async def idle(task: TaskRequested, ctx: Context) -> None: ...

    monkeypatch.setattr(sys.modules[__name__], "app_under_test", app, raising=False)
    code, out, err = _state(capsys, "get", APP_REF, "counts", "k0")
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"error: table counts has no changelog yet (topic {app.name}.idle.counts-changelog does not exist): "
        "has agent idle run?"
    )
