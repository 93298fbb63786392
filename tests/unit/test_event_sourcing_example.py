"""agents/event_sourcing.py on the in-memory twin: the projection equals a replay of the log, each
event applied once, and a projection under a new name rebuilds the same state from the log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.event_sourcing import build, replay
from streams.events import AccountBalance, AccountEvent, AccountEventKind
from streams.testing import TestApp

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _history() -> list[AccountEvent]:
    kinds = [AccountEventKind.DEPOSITED, AccountEventKind.WITHDRAWN, AccountEventKind.DEPOSITED]
    history = [AccountEvent(account=f"a{i}", kind=AccountEventKind.OPENED, at=AT) for i in range(3)]
    history += [
        AccountEvent(account=f"a{i % 3}", kind=kinds[i % 3], amount=100 + i, at=AT) for i in range(12)
    ]
    return history


def test_replay_folds_each_accounts_events_in_order() -> None:
    assert replay(_history())["a1"] == AccountBalance(account="a1", balance=-101 - 104 - 107 - 110, version=5)


@pytest.mark.parametrize("projection", ["balances", "balances-rebuilt"])
async def test_a_projection_is_the_replay_of_the_log_each_event_applied_once(projection: str) -> None:
    app = build(projection=projection)
    events, balances = app.topics["ledger.events"], app.tables["balances"]
    async with TestApp(app) as t:
        for event in _history():
            await t.publish(events, event, key=event.account, settle=False)
        await t.settle()
        assert t.table(projection, balances) == replay(_history())
        assert {b.version for b in t.table(projection, balances).values()} == {5}
