"""At-least-once delivery under faults, against the README's words, on the real broker with real
worker processes (`streams run`) and a side effect outside Kafka (a line per handled message).

- ``dedup=True`` + ``kill -9``: nothing is lost (every input has its side effect and its output), and
  only messages in flight at a kill can repeat their side effect.
- SIGTERM with a backlog (plain at-least-once): a graceful restart loses and repeats nothing.

``STREAMS_SOAK=1`` repeats each scenario 5 times in a loop (fresh topics each round); CI runs one round.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from streams import Settings
from streams.serde.registry import ConfluentRegistry
from tests.chaos._harness import CommittedReader, EffectsLog, Pipeline, expected_ids

pytestmark = pytest.mark.chaos

ROUNDS = 5 if os.environ.get("STREAMS_SOAK") == "1" else 1
KEYS = 1000
DEADLINE = float(os.environ.get("CHAOS_DEADLINE", "900"))
STALL = 30.0  # no new output for this long once every side effect ran: what is missing is lost


def _settle(pipeline: Pipeline, reader: CommittedReader, effects: EffectsLog, expected: set[str]) -> None:
    """Wait until every input has its side effect and its output, or until progress stops."""
    started = last_progress = time.monotonic()
    seen = -1
    while True:
        count = reader.drain(1.0)
        produced = {task_id for ids in reader.by_partition.values() for task_id in ids}
        if expected <= produced and expected <= set(effects.lines()):
            return
        if count != seen:
            seen, last_progress = count, time.monotonic()
        dead = [w for w in pipeline.workers if w.poll() not in (None, 0, -9)]
        assert not dead, f"a worker exited with {dead[0].returncode}:\n{pipeline.logs()}"
        if time.monotonic() - last_progress > STALL or time.monotonic() - started > DEADLINE:
            return  # the assertions that follow say what is missing


def _backlog_pipeline(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path, effects: EffectsLog
) -> Pipeline:
    """Plain at-least-once, 5 ms handlers, and a worker that holds a tenth of a 10,000 backlog."""
    return Pipeline.create(
        settings,
        registry,
        tmp_path,
        guarantee="at_least_once",
        concurrency=8,
        extra_env={
            "CHAOS_EFFECTS_FILE": str(effects.path),
            "CHAOS_HANDLER_SLEEP": "0.005",
            "CHAOS_MAX_IN_FLIGHT": "1000",  # the backlog is 10x what a worker holds
        },
    )


def _assert_each_once(lines: list[str], outputs: list[str], expected: set[str], when: str) -> None:
    """Every input ran its side effect and sent its output exactly once: none lost, none repeated."""
    repeated = len(lines) - len(set(lines))
    assert repeated == 0, f"{repeated} side effects repeated {when}"
    assert set(lines) == expected, f"{len(expected - set(lines))} side effects lost"
    assert len(outputs) == len(set(outputs)), f"{len(outputs) - len(set(outputs))} outputs repeated"
    assert set(outputs) == expected, f"{len(expected - set(outputs))} outputs lost"


def _outputs(reader: CommittedReader) -> list[str]:
    return [task_id for ids in reader.by_partition.values() for task_id in ids]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_dedup_kill_9_eight_times_loses_nothing_and_repeats_only_in_flight(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path, round_: int
) -> None:
    """at_least_once + dedup on both stages, 30,000 keyed messages, 8 x kill -9 at spread points.

    Lost: an input without its side effect or without its output on the last topic (a durable id
    whose outputs never reached the broker would show here). Repeated: a side effect that ran twice;
    only a handler that was in flight at a kill (at most ``concurrency`` per kill) may do that.
    """
    per_key, kills, concurrency = 30, 8, 32
    effects = EffectsLog(tmp_path / "effects.log")
    pipeline = Pipeline.create(
        settings,
        registry,
        tmp_path,
        guarantee="at_least_once",
        concurrency=concurrency,
        extra_env={"CHAOS_DEDUP": "1", "CHAOS_EFFECTS_FILE": str(effects.path)},
    )
    total = pipeline.publish(KEYS, per_key, shuffled=True)
    expected = expected_ids(KEYS, per_key)
    reader = CommittedReader(settings, registry, f"{pipeline.prefix}.out")
    started = time.monotonic()
    try:
        worker = pipeline.start_worker()
        for i in range(kills):
            target = total * (i + 1) / (kills + 1)
            while effects.count() < target:
                assert worker.poll() is None, pipeline.logs()
                assert time.monotonic() - started < DEADLINE, f"{effects.count()} effects:\n{pipeline.logs()}"
                reader.drain(0.2)
            pipeline.kill_9(worker)
            worker = pipeline.start_worker()
        _settle(pipeline, reader, effects, expected)
        time.sleep(2)  # let any late repeat show up
        reader.drain(2.0)
    finally:
        codes = pipeline.stop_all()
        reader.close()
    assert codes.count(-9) == kills, codes
    lines = effects.lines()
    missing_effects = expected - set(lines)
    outputs = _outputs(reader)
    missing_outputs = expected - set(outputs)
    repeats = len(lines) - len(set(lines))
    print(
        f"round {round_}: {total} messages, {kills} kills: {len(lines)} side effects ({repeats} repeated), "
        f"{len(outputs)} outputs ({len(outputs) - len(set(outputs))} repeated)"
    )
    assert not missing_effects, f"{len(missing_effects)} side effects lost: {sorted(missing_effects)[:5]}"
    assert not missing_outputs, f"{len(missing_outputs)} outputs lost, e.g. {sorted(missing_outputs)[:5]}"
    assert repeats <= kills * concurrency, f"{repeats} repeats: more than the messages in flight at the kills"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sigterm_three_times_with_a_backlog_loses_and_repeats_nothing(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path, round_: int
) -> None:
    """Plain at_least_once (no dedup), 10,000 messages published before the first worker starts, so
    each worker holds a backlog it has received but not handled when SIGTERM arrives."""
    per_key, stops = 10, 3
    effects = EffectsLog(tmp_path / "effects.log")
    pipeline = _backlog_pipeline(settings, registry, tmp_path, effects)
    total = pipeline.publish(KEYS, per_key, shuffled=True)
    expected = expected_ids(KEYS, per_key)
    reader = CommittedReader(settings, registry, f"{pipeline.prefix}.out")
    started = time.monotonic()
    left_at_stop: list[int] = []
    try:
        worker = pipeline.start_worker()
        for i in range(stops):
            pipeline.wait_until_assigned(worker)
            target = total * (i + 1) / (stops + 2)
            while effects.count() < target:
                assert worker.poll() is None, pipeline.logs()
                assert time.monotonic() - started < DEADLINE, f"{effects.count()} effects:\n{pipeline.logs()}"
                time.sleep(0.1)
            assert pipeline.sigterm(worker) == 0, pipeline.logs()
            left_at_stop.append(total - effects.count())
            worker = pipeline.start_worker()
        _settle(pipeline, reader, effects, expected)
        time.sleep(1)
        reader.drain(2.0)
    finally:
        codes = pipeline.stop_all()
        reader.close()
    assert codes == [0] * (stops + 1), codes
    assert all(left > 0 for left in left_at_stop), f"each SIGTERM must leave a backlog: {left_at_stop}"
    lines = effects.lines()
    outputs = _outputs(reader)
    print(
        f"round {round_}: {total} messages, backlog left at each SIGTERM {left_at_stop}: "
        f"{len(lines)} side effects, {len(outputs)} outputs"
    )
    _assert_each_once(lines, outputs, expected, "after graceful restarts")


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_scale_out_and_back_in_with_a_backlog_repeats_nothing(
    settings: Settings, registry: ConfluentRegistry, tmp_path: Path, round_: int
) -> None:
    """Plain at_least_once: a second worker joins during a backlog (the first drains and hands over
    half its partitions), then leaves by SIGTERM (it drains and hands them back). Revoked partitions
    finish what was received before they move, so nothing is handled twice."""
    per_key = 10
    effects = EffectsLog(tmp_path / "effects.log")
    pipeline = _backlog_pipeline(settings, registry, tmp_path, effects)
    total = pipeline.publish(KEYS, per_key, shuffled=True)
    expected = expected_ids(KEYS, per_key)
    reader = CommittedReader(settings, registry, f"{pipeline.prefix}.out")
    try:
        first = pipeline.start_worker()
        pipeline.wait_until_assigned(first)
        while effects.count() < total * 0.15:
            assert first.poll() is None, pipeline.logs()
            time.sleep(0.1)
        second = pipeline.start_worker()
        pipeline.wait_until_assigned(second)
        at_scale_out = effects.count()
        while effects.count() < at_scale_out + (total - at_scale_out) * 0.3:
            assert first.poll() is None and second.poll() is None, pipeline.logs()
            time.sleep(0.1)
        assert pipeline.sigterm(second) == 0, pipeline.logs()
        left_at_scale_in = total - effects.count()
        _settle(pipeline, reader, effects, expected)
        time.sleep(1)
        reader.drain(2.0)
        assert first.poll() is None, "the first worker kept running throughout"
    finally:
        codes = pipeline.stop_all()
        reader.close()
    assert codes == [0, 0], codes
    assert at_scale_out < total and left_at_scale_in > 0, "both rebalances must happen with work left"
    lines = effects.lines()
    outputs = _outputs(reader)
    print(
        f"round {round_}: {total} messages, scale-out at {at_scale_out}, {left_at_scale_in} left at "
        f"scale-in: "
        f"{len(lines)} side effects, {len(outputs)} outputs"
    )
    _assert_each_once(lines, outputs, expected, "across the rebalances")
