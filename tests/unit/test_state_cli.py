"""`streams state get|scan` without a broker: the changelog is a list of records, the registry a dict.

What is checked here: the latest record of a key wins and a tombstone deletes it, how keys are shown and
read back, how the table is found among the agents, and that every mistake is one `error:` line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from streams import App, ConfigError, Context, Settings
from streams.cli import main
from streams.cli.state import parse_key, render_key
from streams.errors import DeserializationError
from streams.events import MetricSample, TaskRequested
from streams.serde.codec import AvroEncoder
from streams.serde.registry import InMemoryRegistry, subject_for
from streams.state_query import find_table, read_table
from streams.transport.changelog import ChangelogRecord
from tests._records import sample

pytestmark = pytest.mark.unit

APP_REF = f"{__name__}:state_app"


def _app() -> App:
    app = App("shop")
    orders = app.topic("shop.orders", value=TaskRequested, partitions=2)
    counts = app.table("counts", value=MetricSample)
    blobs = app.table("blobs", value=MetricSample, key=bytes)

    @app.agent(orders, tables=[counts, blobs])
    async def count(task: TaskRequested, ctx: Context) -> None: ...

    return app


class FakeChangelog:
    """Stands in for the changelog topic: partitions and records as read_committed would return them."""

    def __init__(self, registry: InMemoryRegistry, partitions: int = 2) -> None:
        self.partitions = partitions
        self.records: dict[str, list[ChangelogRecord]] = {}
        self._registry = registry

    def put(self, topic: str, partition: int, key: bytes | None, value: MetricSample | bytes | None) -> None:
        if isinstance(value, MetricSample):
            value = AvroEncoder(self._registry, subject_for(topic), MetricSample.avro_schema())(value)
        records = self.records.setdefault(topic, [])
        offset = sum(1 for r in records if r.partition == partition)
        records.append(ChangelogRecord(partition, offset, key, value))

    def partitions_of(self, settings: Settings, topic: str, *, timeout: float) -> list[int]:
        return list(range(self.partitions))

    def read(
        self, settings: Settings, topic: str, partitions: Iterable[int], *, timeout: float
    ) -> Iterator[ChangelogRecord]:
        wanted = set(partitions)
        yield from (r for r in self.records.get(topic, []) if r.partition in wanted)


COUNTS = "shop.count.counts-changelog"
BLOBS = "shop.count.blobs-changelog"


@pytest.fixture
def registry() -> InMemoryRegistry:
    return InMemoryRegistry()


@pytest.fixture
def changelog(monkeypatch: pytest.MonkeyPatch, registry: InMemoryRegistry) -> FakeChangelog:
    fake = FakeChangelog(registry)
    monkeypatch.setattr("streams.state_query.read_changelog", fake.read)
    monkeypatch.setattr("streams.state_query.changelog_partitions", fake.partitions_of)
    monkeypatch.setattr("streams.cli.state.registry", lambda config: registry)
    monkeypatch.setattr(sys.modules[__name__], "state_app", _app(), raising=False)
    fake.put(COUNTS, 0, b"a", sample("count", 1))
    fake.put(COUNTS, 1, b"b", sample("count", 1))
    fake.put(COUNTS, 0, b"a", sample("count", 2))
    fake.put(COUNTS, 1, b"gone", sample("count", 7))
    fake.put(COUNTS, 1, None, sample("count", 99))  # keyless: the worker never writes one; skipped
    fake.put(COUNTS, 1, b"gone", None)  # a tombstone: the key was deleted
    fake.put(COUNTS, 0, b"c", sample("count", 5))
    return fake


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["state", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (b"order-1", "order-1"),
        (b"caf\xc3\xa9 au lait", "café au lait"),  # printable UTF-8 stays text
        (b"\xff\x00\x10", "hex:ff0010"),  # not UTF-8
        (b"line\nbreak", "hex:6c696e650a627265616b"),  # UTF-8 but not printable
        (b"hex:ff", "hex:6865783a6666"),  # text that looks like the marker: hex, so it reads back
        (b"", "hex:"),  # an empty key is not a blank cell
    ],
)
def test_bytes_keys_render_as_text_or_marked_hex_and_read_back(key: bytes, shown: str) -> None:
    assert render_key(key) == shown
    assert parse_key(shown, bytes) == key


def test_text_keys_are_shown_and_read_as_they_are() -> None:
    assert render_key("hex:ff") == "hex:ff"
    assert parse_key("hex:ff", str) == "hex:ff"
    with pytest.raises(ConfigError, match="expected hex digits"):
        parse_key("hex:xyz", bytes)


def test_the_latest_record_of_a_key_wins_and_a_tombstone_deletes_it(
    changelog: FakeChangelog, registry: InMemoryRegistry
) -> None:
    agent, table = find_table(_app(), "counts")
    state = read_table(Settings(), registry, agent, table)
    assert {r.key: r.value.value for r in state.rows()} == {"a": 2.0, "b": 1.0, "c": 5.0}
    assert (state.records, state.partitions) == (7, (0, 1))
    assert [r.key for r in state.rows(limit=2)] == ["a", "b"]
    a = state.get("a")
    assert a is not None and (a.partition, a.offset) == (0, 1)
    assert state.get("gone") is None and state.get("never") is None
    only_1 = read_table(Settings(), registry, agent, table, partitions=[1])
    assert [r.key for r in only_1.rows()] == ["b"]
    with pytest.raises(ConfigError, match=r"has no partition 5; its partitions are 0-1"):
        read_table(Settings(), registry, agent, table, partitions=[5])


def test_an_undecodable_value_names_where_it_lies(
    changelog: FakeChangelog, registry: InMemoryRegistry
) -> None:
    changelog.put(COUNTS, 1, b"bad", b"not avro")
    state = read_table(Settings(), registry, *find_table(_app(), "counts"))
    assert state.get("a") is not None, "other keys still read"
    with pytest.raises(DeserializationError, match=rf"^{COUNTS}\[1\]@4: unknown magic byte"):
        state.get("bad")


def test_the_table_is_found_by_name_and_mistakes_list_the_choices() -> None:
    app = _app()
    elsewhere = app.topic("shop.returns", value=TaskRequested)
    counts = app.tables["counts"]
    app.table("unheld", value=MetricSample)

    @app.agent(elsewhere, tables=[counts])
    async def refund(task: TaskRequested, ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match=r"^table counts is held by agents count, refund: choose one with"):
        find_table(app, "counts")
    agent, table = find_table(app, "counts", agent="refund")
    assert (agent.name, table) == ("refund", counts)
    assert find_table(app, "blobs")[0].name == "count"
    with pytest.raises(ConfigError, match=r"has no table nope; tables: blobs \(agent count\), counts"):
        find_table(app, "nope")
    with pytest.raises(ConfigError, match=r"has no agent ghost; agents: count, refund"):
        find_table(app, "counts", agent="ghost")
    with pytest.raises(ConfigError, match=r"agent refund has no table blobs; its tables: counts"):
        find_table(app, "blobs", agent="refund")
    bare = App("bare")
    bare.table("unheld", value=MetricSample)
    with pytest.raises(ConfigError, match=r"tables unheld are declared but no agent holds one"):
        find_table(bare, "unheld")


def test_scan_prints_a_table_and_one_json_document(
    changelog: FakeChangelog, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "scan", APP_REF, "counts")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line.split("│")[1].strip() for line in lines if "│" in line] == ["a", "b", "c"]
    assert "3 rows; agent count, 7 records of shop.count.counts-changelog partitions 0, 1" in out

    code, out, _ = _run(capsys, "scan", APP_REF, "counts", "--json", "--limit", "2")
    document = json.loads(out)
    assert code == 0
    assert {
        k: document[k] for k in ("app", "agent", "table", "changelog", "partitions", "records", "total")
    } == {
        "app": "shop",
        "agent": "count",
        "table": "counts",
        "changelog": COUNTS,
        "partitions": [0, 1],
        "records": 7,
        "total": 3,
    }
    assert document["rows"] == [
        {"key": "a", "partition": 0, "offset": 1, "value": {**_dumped(2), "value": 2.0}},
        {"key": "b", "partition": 1, "offset": 0, "value": _dumped(1)},
    ]


def _dumped(value: float) -> dict[str, Any]:
    return sample("count", value).model_dump(mode="json")


def test_scan_of_bytes_keys_and_of_an_empty_partition(
    changelog: FakeChangelog, capsys: pytest.CaptureFixture[str]
) -> None:
    changelog.put(BLOBS, 1, b"\x00\x01", sample("blob", 3))
    changelog.put(BLOBS, 1, b"readable", sample("blob", 4))
    code, out, _ = _run(capsys, "scan", APP_REF, "blobs", "--json")
    assert code == 0
    assert [row["key"] for row in json.loads(out)["rows"]] == ["hex:0001", "readable"]
    code, out, _ = _run(capsys, "get", APP_REF, "blobs", "hex:0001", "--json")
    assert (code, json.loads(out)["value"]) == (0, 3.0)
    code, out, _ = _run(capsys, "scan", APP_REF, "blobs", "--partition", "0")
    assert code == 0 and out.startswith("table blobs is empty (agent count, 0 records")


def test_get_prints_the_value_and_a_missing_key_exits_1(
    changelog: FakeChangelog, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "get", APP_REF, "counts", "a", "--json")
    assert (code, json.loads(out)) == (0, {**_dumped(2), "value": 2.0})
    code, out, _ = _run(capsys, "get", APP_REF, "counts", "c")
    assert code == 0 and "value" in out and "5.0" in out and "partition 0 offset 2" in out

    for args in (["gone"], ["gone", "--json"]):
        code, out, err = _run(capsys, "get", APP_REF, "counts", *args)
        assert code == 1
        assert out == ("null\n" if "--json" in args else "")
        assert err.strip() == "no key 'gone' in table counts (agent count: 3 rows in partitions 0, 1)"


def test_a_key_written_in_two_partitions_has_a_row_in_each(
    changelog: FakeChangelog, capsys: pytest.CaptureFixture[str], registry: InMemoryRegistry
) -> None:
    changelog.put(COUNTS, 1, b"a", sample("count", 40))  # a handler of partition 1 wrote key "a" too
    state = read_table(Settings(), registry, *find_table(_app(), "counts"))
    assert [(r.key, r.partition, r.value.value) for r in state.rows()][:2] == [("a", 0, 2.0), ("a", 1, 40.0)]
    with pytest.raises(
        ConfigError, match=r"^key 'a' of table counts is in partitions 0, 1, each with its own"
    ):
        state.get("a")
    code, out, _ = _run(capsys, "get", APP_REF, "counts", "a", "--partition", "1", "--json")
    assert (code, json.loads(out)["value"]) == (0, 40.0)
    code, _, err = _run(capsys, "get", APP_REF, "counts", "a")
    assert code == 1 and err.strip().endswith("choose one with --partition")


def test_user_mistakes_are_one_error_line(
    changelog: FakeChangelog, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "scan", APP_REF, "nope")
    assert (code, out) == (1, "")
    assert (
        err.strip() == "error: app shop has no table nope; tables: blobs (agent count), counts (agent count)"
    )
    code, _, err = _run(capsys, "scan", APP_REF, "counts", "--partition", "9")
    assert code == 1 and err.startswith("error: shop.count.counts-changelog has no partition 9")
    code, _, err = _run(capsys, "get", APP_REF, "blobs", "hex:zz")
    assert code == 1 and err.startswith("error: key 'hex:zz': expected hex digits")


def test_a_long_read_reports_progress_on_stderr(
    changelog: FakeChangelog, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streams.state_query._PROGRESS_EVERY", 0.0)  # every record counts as slow
    code, out, err = _run(capsys, "scan", APP_REF, "counts", "--json")
    assert code == 0 and json.loads(out)["total"] == 3, "stdout keeps only the document"
    assert "read 1 record from 2 partitions ..." in err
    assert err.splitlines()[-1].startswith("read 7 records from 2 partitions in ")


def test_an_unreachable_broker_is_one_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "state_app", _app(), raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("KAFKA_TIMEOUT", "1")
    code, out, err = _run(capsys, "scan", APP_REF, "counts")
    assert (code, out) == (1, "")
    assert err.startswith("error: cannot reach Kafka at 127.0.0.1:9 to read shop.count.counts-changelog")
    assert len(err.strip().splitlines()) == 1
