"""Event-time windows on the in-memory twin: which windows a record falls in, when a window closes,
late records, and what is emitted in each mode for tumbling, hopping, sliding and session windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams import App, ConfigError, ExactlyOnce, Hopping, Session, Sliding, Tumbling, Window
from streams.events import MetricSample, WindowSummary
from streams.testing import TestApp
from tests._records import EPOCH, merge_summaries, observed, summarize

pytestmark = pytest.mark.unit

S = 1000  # ms in a second


def _app(window: Any, **options: Any) -> tuple[App, Any, Any]:
    app = App("win")
    # One partition: stream time is per partition, and these tests move it with any key.
    samples = app.topic("win.samples", value=MetricSample, partitions=1)
    summaries = app.topic("win.summaries", value=WindowSummary, partitions=1)
    if isinstance(window, Session):
        options.setdefault("merge", merge_summaries)
    app.windowed(samples, window, into=summaries, timestamp=lambda s: s.observed_at, **options)(summarize)
    return app, samples, summaries


async def _publish(t: TestApp, topic: Any, *events: tuple[str, float, float]) -> None:
    for name, value, second in events:
        await t.publish(topic, observed(name, value, second), key=name, settle=False)
    await t.settle()


def _windows(t: TestApp, topic: Any) -> list[tuple[str, float, float, int, float]]:
    """What was emitted, as (key, start s, end s, count, sum) relative to EPOCH, in emission order."""
    return [
        (
            s.key,
            (s.start - EPOCH).total_seconds(),
            (s.end - EPOCH).total_seconds(),
            s.count,
            s.sum,
        )
        for s in t.sent(topic)
    ]


# ---------------------------------------------------------------- shapes


def test_tumbling_and_hopping_windows_of_a_moment() -> None:
    assert Tumbling(size=10).windows(25 * S) == [Window(20 * S, 30 * S)]
    assert Tumbling(size=timedelta(seconds=10)).windows(20 * S) == [Window(20 * S, 30 * S)]
    assert Hopping(size=10, every=5).windows(12 * S) == [Window(5 * S, 15 * S), Window(10 * S, 20 * S)]
    assert Hopping(size=10, every=5).windows(10 * S) == [Window(5 * S, 15 * S), Window(10 * S, 20 * S)]
    assert Tumbling(size=10, grace=2).close_at(Window(0, 10 * S)) == 12 * S
    assert Sliding(size=10).window(30 * S) == Window(20 * S, 30 * S)
    assert Session(gap=5).joins(Window(10 * S, 20 * S), 25 * S)
    assert not Session(gap=5).joins(Window(10 * S, 20 * S), 25 * S + 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Tumbling(size=0), "Tumbling size must be positive"),
        (lambda: Tumbling(size=10, grace=-1), "Tumbling grace must be zero or more"),
        (lambda: Hopping(size=5, every=10), "every must not exceed size"),
        (lambda: Session(gap="5"), "Session gap must be seconds"),
    ],
)
def test_bad_shapes_say_what_is_wrong(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_bad_declarations_say_what_is_wrong() -> None:
    app = App("bad")
    samples = app.topic("bad.samples", value=MetricSample)
    summaries = app.topic("bad.summaries", value=WindowSummary)
    keyless = app.topic("bad.keyless", value=MetricSample, key=None)
    with pytest.raises(ConfigError, match="session windows need merge"):
        app.windowed(samples, Session(gap=5), into=summaries)(summarize)
    with pytest.raises(ConfigError, match="has no key"):
        app.windowed(keyless, Tumbling(size=5), into=summaries)(summarize)
    with pytest.raises(ConfigError, match="emit must be 'final' or 'update'"):
        app.windowed(samples, Tumbling(size=5), into=summaries, emit="always")(summarize)  # type: ignore[arg-type]
    undeclared = App("other").topic("other.out", value=WindowSummary)
    with pytest.raises(ConfigError, match="not declared by app bad"):
        app.windowed(samples, Tumbling(size=5), into=undeclared)


# ---------------------------------------------------------------- tumbling


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_tumbling_results_are_emitted_once_when_stream_time_passes_the_end(guarantee: str) -> None:
    options = {"guarantee": ExactlyOnce()} if guarantee == "exactly_once" else {}
    app, samples, summaries = _app(Tumbling(size=10), **options)
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 1), ("cpu", 2, 5), ("cpu", 4, 9.999))
        assert t.sent(summaries) == [], "no window has closed: stream time is 9.999 s"
        await _publish(t, samples, ("cpu", 8, 10))
        assert _windows(t, summaries) == [("cpu", 0, 10, 3, 7)]
        await _publish(t, samples, ("cpu", 16, 35))
        assert _windows(t, summaries) == [("cpu", 0, 10, 3, 7), ("cpu", 10, 20, 1, 8)]
        state = t.table("summarize", app.agents["summarize"].tables[0])
        assert sorted(state) == [f"{30 * S + EPOCH_MS}:{40 * S + EPOCH_MS}:cpu"], "closed windows deleted"


EPOCH_MS = int(EPOCH.timestamp() * 1000)


async def test_a_window_closes_for_every_key_of_the_partition_when_any_record_moves_stream_time() -> None:
    app = App("win")
    samples = app.topic("win.samples", value=MetricSample, partitions=1)
    summaries = app.topic("win.summaries", value=WindowSummary, partitions=1)
    app.windowed(samples, Tumbling(size=10), into=summaries, timestamp=lambda s: s.observed_at)(summarize)
    async with TestApp(app) as t:
        await _publish(t, samples, ("a", 1, 1), ("b", 1, 2), ("c", 1, 3), ("a", 1, 4))
        await _publish(t, samples, ("z", 1, 12))
        assert sorted(_windows(t, summaries)) == [("a", 0, 10, 2, 2), ("b", 0, 10, 1, 1), ("c", 0, 10, 1, 1)]
        keys = [m.key for m in t.messages(summaries)]
        assert sorted(keys) == ["a", "b", "c"], "each result goes out under its own key"


async def test_grace_admits_out_of_order_records_and_later_ones_are_counted_late() -> None:
    app, samples, summaries = _app(Tumbling(size=10, grace=5))
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 1), ("cpu", 1, 12))
        await _publish(t, samples, ("cpu", 1, 8))  # 4 s behind stream time: within grace
        await _publish(t, samples, ("cpu", 1, 15))  # stream time 15 closes [0, 10)
        assert _windows(t, summaries) == [("cpu", 0, 10, 2, 2)]
        await _publish(t, samples, ("cpu", 1, 9))  # too late for [0, 10)
        assert t.stats("summarize").late_records == 1
        assert t.dead_letters("summarize") == [], "late records are only counted unless asked"
        assert _windows(t, summaries) == [("cpu", 0, 10, 2, 2)], "a closed window never changes"
        await _publish(t, samples, ("cpu", 1, 40))
        assert _windows(t, summaries)[1] == ("cpu", 10, 20, 2, 2)


async def test_late_records_can_be_dead_lettered() -> None:
    app, samples, _summaries = _app(Tumbling(size=10), late="dead-letter")
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 1), ("cpu", 1, 25), ("cpu", 1, 2))
        assert t.stats("summarize").late_records == 1
        [letter] = t.dead_letters("summarize")
        assert letter.error_class == "streams.errors.LateRecord"
        assert "is late" in letter.reason
        assert t.committed("summarize"), "the late record is finished, not stuck"


async def test_update_mode_emits_every_change() -> None:
    app, samples, summaries = _app(Tumbling(size=10), emit="update")
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 1), ("cpu", 2, 2), ("cpu", 4, 11))
        assert _windows(t, summaries) == [("cpu", 0, 10, 1, 1), ("cpu", 0, 10, 2, 3), ("cpu", 10, 20, 1, 4)]


async def test_the_record_timestamp_is_the_default_event_time() -> None:
    app = App("win")
    samples = app.topic("win.samples", value=MetricSample)
    summaries = app.topic("win.summaries", value=WindowSummary)
    app.windowed(samples, Tumbling(size=10), into=summaries)(summarize)
    async with TestApp(app) as t:
        start = t.clock.now
        await t.publish(samples, observed("cpu", 1, 0), key="cpu")
        await t.clock.sleep(30)
        await t.publish(samples, observed("cpu", 1, 0), key="cpu")
        [closed] = t.sent(summaries)
        assert closed.count == 1
        assert closed.start.timestamp() <= start < closed.end.timestamp()
        first_window = datetime.fromtimestamp(start, UTC)  # closed: a record stamped then is late
        await t.publish(samples, observed("cpu", 1, 0), key="cpu", timestamp=first_window)
        assert t.stats("summarize").late_records == 1


async def test_a_reducer_returning_the_wrong_type_dead_letters_the_record() -> None:
    app = App("win")
    samples = app.topic("win.samples", value=MetricSample)
    summaries = app.topic("win.summaries", value=WindowSummary)

    def broken(window: Window, current: WindowSummary | None, event: MetricSample) -> WindowSummary:
        return event  # type: ignore[return-value]

    app.windowed(samples, Tumbling(size=10), into=summaries, timestamp=lambda s: s.observed_at)(broken)
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 1))
        [letter] = t.dead_letters("broken")
        assert "broken returned MetricSample; win.summaries takes WindowSummary" in letter.reason
        await _publish(t, samples, ("cpu", 1, 20))
        assert t.sent(summaries) == []


# ---------------------------------------------------------------- hopping


async def test_hopping_windows_overlap_and_each_closes_on_its_own() -> None:
    app, samples, summaries = _app(Hopping(size=10, every=5))
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 1), ("cpu", 2, 6), ("cpu", 4, 12))
        assert _windows(t, summaries) == [("cpu", -5, 5, 1, 1), ("cpu", 0, 10, 2, 3)]
        await _publish(t, samples, ("cpu", 0, 30))
        assert _windows(t, summaries)[2:] == [("cpu", 5, 15, 2, 6), ("cpu", 10, 20, 1, 4)]


# ---------------------------------------------------------------- sessions


async def test_sessions_grow_with_activity_and_close_after_the_gap() -> None:
    app, samples, summaries = _app(Session(gap=5))
    async with TestApp(app) as t:
        await _publish(t, samples, ("u", 1, 0), ("u", 1, 3), ("u", 1, 7), ("v", 1, 8))
        assert t.sent(summaries) == []
        await _publish(t, samples, ("v", 1, 13))  # 13 > 7 + 5: u's session [0, 7] is over
        assert _windows(t, summaries) == [("u", 0, 7, 3, 3)]
        await _publish(t, samples, ("u", 1, 30))
        assert _windows(t, summaries)[1:] == [("v", 8, 13, 2, 2)]


async def test_an_out_of_order_record_joins_two_sessions_into_one() -> None:
    app, samples, summaries = _app(Session(gap=5, grace=20))
    async with TestApp(app) as t:
        await _publish(t, samples, ("u", 1, 0), ("u", 2, 10))  # two sessions: [0, 0] and [10, 10]
        await _publish(t, samples, ("u", 4, 5))  # within the gap of both: one session [0, 10]
        await _publish(t, samples, ("u", 0, 100))
        assert _windows(t, summaries) == [("u", 0, 10, 3, 7)]


async def test_session_updates_carry_the_merged_session() -> None:
    app, samples, summaries = _app(Session(gap=5, grace=20), emit="update")
    async with TestApp(app) as t:
        await _publish(t, samples, ("u", 1, 0), ("u", 2, 10), ("u", 4, 5))
        assert _windows(t, summaries) == [("u", 0, 0, 1, 1), ("u", 10, 10, 1, 2), ("u", 0, 10, 3, 7)]


# ---------------------------------------------------------------- sliding


async def test_sliding_windows_follow_each_record() -> None:
    app, samples, summaries = _app(Sliding(size=10), emit="update")
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 0), ("cpu", 2, 6), ("cpu", 4, 10), ("cpu", 8, 17))
        assert _windows(t, summaries) == [
            ("cpu", -10, 0, 1, 1),
            ("cpu", -4, 6, 2, 3),
            ("cpu", 0, 10, 3, 7),
            ("cpu", 7, 17, 2, 12),
        ]


async def test_sliding_final_results_include_records_that_came_within_grace() -> None:
    app, samples, summaries = _app(Sliding(size=10, grace=8))
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 0), ("cpu", 2, 10))  # 10 closes the window ending at 0
        await _publish(t, samples, ("cpu", 4, 3))  # out of order, within grace: its window and 10's
        await _publish(t, samples, ("cpu", 0, 40))
        assert _windows(t, summaries)[:3] == [
            ("cpu", -10, 0, 1, 1),
            ("cpu", -7, 3, 2, 5),
            ("cpu", 0, 10, 3, 7),
        ]


async def test_a_sliding_record_too_late_for_its_own_window_still_counts_in_later_ones() -> None:
    app, samples, summaries = _app(Sliding(size=10, grace=5), emit="update")
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 0), ("cpu", 2, 10))
        await _publish(t, samples, ("cpu", 4, 3))  # its window [-7, 3] closed at 9; [0, 10] is open
        assert len(t.sent(summaries)) == 2, "no result of its own"
        assert t.stats("summarize").late_records == 0
        await _publish(t, samples, ("cpu", 8, 12))
        assert _windows(t, summaries)[-1] == ("cpu", 2, 12, 3, 14)
        await _publish(t, samples, ("cpu", 1, 1))  # [0, 10] still takes it
        assert t.stats("summarize").late_records == 0
        await _publish(t, samples, ("cpu", 1, 40), ("cpu", 1, 24))  # windows ending 24..34 closed by 40
        assert t.stats("summarize").late_records == 1


async def test_sliding_buffers_drop_records_no_open_window_can_hold() -> None:
    app, samples, _summaries = _app(Sliding(size=10))
    async with TestApp(app) as t:
        await _publish(t, samples, ("cpu", 1, 0), ("cpu", 1, 5))
        windows = app.agents["summarize"].tables[0]
        [buffer] = t.table("summarize", windows).values()
        assert len(buffer.times) == 2
        await _publish(t, samples, ("cpu", 1, 100), ("other", 1, 200))
        assert (
            "cpu" not in t.table("summarize", windows) or len(t.table("summarize", windows)["cpu"].times) == 1
        )
        await _publish(t, samples, ("other", 1, 300))
        assert "cpu" not in t.table("summarize", windows), "nothing of cpu is in an open window"


async def test_bytes_keys_work_like_text_keys() -> None:
    app = App("win")
    samples = app.topic("win.samples", value=MetricSample, key=bytes)
    summaries = app.topic("win.summaries", value=WindowSummary, key=bytes)
    app.windowed(samples, Tumbling(size=10), into=summaries, timestamp=lambda s: s.observed_at)(summarize)
    async with TestApp(app) as t:
        for second in (1, 2, 11):
            await t.publish(samples, observed("cpu", 1, second), key=b"\x00cpu:1")
        [message] = t.messages(summaries)
        assert message.key == b"\x00cpu:1"
        assert message.value.count == 2


README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


async def test_the_readme_windows_example_summarizes_a_minute() -> None:
    code = README.split("## Windows over event time", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    example: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), example)  # our own README's example, run as written
    async with TestApp(example["app"]) as t:
        for second, value in ((1, 2.0), (30, 4.0), (59, 6.0), (75, 1.0)):
            await t.publish(example["samples"], observed("cpu", value, second), key="cpu")
        [minute] = t.sent(example["per_minute"])
        assert (minute.count, minute.sum, minute.start, minute.end) == (
            3,
            12.0,
            EPOCH,
            EPOCH + timedelta(minutes=1),
        )
