"""Shared state: several agents write to one case file; one agent owns it and applies their updates
atomically, resolving conflicts by a stated rule.

    streams run agents.shared_state:app
    streams publish cases.updates --key c1 --value '{"case_id": "c1", "writer": "triage",
        "status": "open", "notes": ["customer called"], "written_at": 1767225600000}'
    streams state get agents.shared_state:app files c1

Agents do not share memory: they send ``CaseUpdate`` events to ``cases.updates`` (keyed by case, from
``ctx.send`` in their own handlers or a ``Publisher``), and the ``case-file`` agent, the only writer of
the table ``files``, merges them.

- **Atomic updates.** Updates of one case are applied one at a time (``ordering="key"``, 16 cases at
  once), each a read-modify-write of the table in the handler call that commits it with the input
  offset (``ExactlyOnce()``): no update is lost between two writers, none is applied twice.
- **Conflict resolution, per field.** ``status`` is **last writer wins** by the writer's timestamp
  (``written_at``; equal timestamps: the greater writer name), not by arrival, so a late-arriving
  older write never overwrites a newer one. ``notes`` are **merged**: the union of every writer's
  notes, none lost. Both rules are commutative, so the file comes out the same in any arrival order.
"""

from __future__ import annotations

from streams import App, Context, ExactlyOnce
from streams.events import CaseFile, CaseUpdate


def merge(file: CaseFile | None, update: CaseUpdate) -> CaseFile:
    """``file`` with ``update`` applied: last writer wins for the status, union for the notes."""
    current = file or CaseFile(case_id=update.case_id)
    status, status_by, status_at = current.status, current.status_by, current.status_at
    newer = status_at is None or (update.written_at, update.writer) > (status_at, status_by or "")
    if update.status is not None and newer:
        status, status_by, status_at = update.status, update.writer, update.written_at
    return CaseFile(
        case_id=update.case_id,
        status=status,
        status_by=status_by,
        status_at=status_at,
        notes=sorted({*current.notes, *update.notes}),
        updates=current.updates + 1,
    )


def build(name: str = "cases") -> App:
    """The app, named ``name`` (tests run it under a name of their own)."""
    app = App(name)
    updates = app.topic(f"{name}.updates", value=CaseUpdate, partitions=3)
    files = app.table("files", value=CaseFile)

    @app.agent(updates, name="case-file", concurrency=16, guarantee=ExactlyOnce(), tables=[files])
    async def case_file(update: CaseUpdate, ctx: Context) -> None:
        ctx.table(files).update(update.case_id, lambda file: merge(file, update))

    return app


app = build()
