"""agents/shared_state.py on the in-memory twin: every update is applied once, the status is the
latest by the writers' clocks (not by arrival), notes are merged, in any arrival order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from agents.shared_state import build, merge
from streams.events import CaseFile, CaseUpdate
from streams.testing import TestApp

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _update(writer: str, second: int, status: str | None, *notes: str) -> CaseUpdate:
    return CaseUpdate(
        case_id="c1",
        writer=writer,
        status=status,
        notes=list(notes),
        written_at=T0 + timedelta(seconds=second),
    )


UPDATES = [
    _update("triage", 1, "open", "customer called"),
    _update("billing", 3, "refunded", "refund sent"),
    _update("triage", 2, "escalated"),
    _update("support", 3, None, "customer called", "apology sent"),
    _update("audit", 3, "closed"),  # same time as billing's: the greater writer name wins the tie
]


def test_the_merged_file_is_the_same_in_every_arrival_order() -> None:
    expected = CaseFile(
        case_id="c1",
        status="refunded",
        status_by="billing",
        status_at=T0 + timedelta(seconds=3),
        notes=["apology sent", "customer called", "refund sent"],
        updates=5,
    )
    for order in itertools.permutations(UPDATES):
        file = None
        for update in order:
            file = merge(file, update)
        assert file == expected, [u.writer for u in order]


async def test_concurrent_writers_lose_no_update_and_an_older_write_arriving_late_loses() -> None:
    app = build()
    updates, files = app.topics["cases.updates"], app.tables["files"]
    async with TestApp(app) as t:
        for i in range(60):  # 3 writers, 4 cases, all in flight at once
            update = CaseUpdate(
                case_id=f"c{i % 4}",
                writer=f"w{i % 3}",
                status=f"s{i}",
                notes=[f"n{i}"],
                written_at=T0 + timedelta(seconds=i),
            )
            await t.publish(updates, update, key=update.case_id, settle=False)
        await t.publish(
            updates, _update("triage", -5, "stale").model_copy(update={"case_id": "c0"}), key="c0"
        )
        table = t.table("case-file", files)
        assert {key: file.updates for key, file in table.items()} == {"c0": 16, "c1": 15, "c2": 15, "c3": 15}
        assert [table[f"c{k}"].status for k in range(4)] == ["s56", "s57", "s58", "s59"]
        assert table["c0"].notes == sorted(f"n{i}" for i in range(0, 60, 4))
