"""Event sourcing: an account's balance is derived from its event log, rebuilt by replaying the log,
and checkpointed so a restart does not replay it all.

    streams run agents.event_sourcing:app               # the live projection: balances
    streams publish ledger.events --key a1 \\
        --value '{"account": "a1", "kind": "DEPOSITED", "amount": 500, "at": 1767225600000}'
    streams state get agents.event_sourcing:app balances a1
    streams run agents.event_sourcing:rebuilt           # a new projection, replayed from offset 0

- **The log is the truth.** ``ledger.events`` (keyed by account, kept forever) holds every
  ``AccountEvent``; a balance is :func:`replay` of its account's events, a pure fold with
  :func:`apply`.
- **Projection with checkpoints.** The ``balances`` agent applies each event to its table
  ``balances``, exactly once (``ExactlyOnce()``: table, changelog and input offset commit together),
  and ``version`` counts the events applied. The table is kept in RocksDB: a clean restart resumes from
  the local checkpoint and the committed offset, reading only what came since; a new machine restores
  it from the table's changelog, not by replaying the events.
- **Rebuild by replay.** A projection under a new name (``rebuilt``: group ``ledger.balances-rebuilt``)
  starts from the log's first offset and arrives at the same balances: how a changed ``apply`` (a bug
  fix, a new field) gets a corrected read model beside the old one.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams import App, Context, ExactlyOnce
from streams.events import AccountBalance, AccountEvent, AccountEventKind

SIGN = {AccountEventKind.OPENED: 0, AccountEventKind.DEPOSITED: 1, AccountEventKind.WITHDRAWN: -1}


def apply(state: AccountBalance | None, event: AccountEvent) -> AccountBalance:
    """The account after ``event``: the one place where events become state."""
    before = state or AccountBalance(account=event.account)
    return AccountBalance(
        account=event.account,
        balance=before.balance + SIGN[event.kind] * event.amount,
        version=before.version + 1,
    )


def replay(history: Iterable[AccountEvent]) -> dict[str, AccountBalance]:
    """Every account's state from its events, in log order."""
    state: dict[str, AccountBalance] = {}
    for event in history:
        state[event.account] = apply(state.get(event.account), event)
    return state


def build(name: str = "ledger", projection: str = "balances") -> App:
    """The app, named ``name``, with the projection agent ``projection`` (a new name replays the log)."""
    app = App(name)
    events = app.topic(f"{name}.events", value=AccountEvent, partitions=3, retention_ms=-1)  # kept forever
    balances = app.table("balances", value=AccountBalance, store="rocksdb")

    @app.agent(events, name=projection, guarantee=ExactlyOnce(), tables=[balances])
    async def project(event: AccountEvent, ctx: Context) -> None:
        ctx.table(balances).update(event.account, lambda state: apply(state, event))

    return app


app = build()
rebuilt = build(projection="balances-rebuilt")
