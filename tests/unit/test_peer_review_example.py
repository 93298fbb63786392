"""agents/peer_review.py on the in-memory twin: every agent in time proposes, each draft is scored by
the others only, the best mean wins; a draft past the window takes no part."""

from __future__ import annotations

import pytest

from agents.peer_review import SWARM, build, draft, score
from streams import WorkflowFailed
from streams.events import TaskRequested
from streams.testing import TestApp

pytestmark = pytest.mark.unit

QUESTION = "why was the refund late"


def _case(task_id: str) -> TaskRequested:
    return TaskRequested(task_id=task_id, capability="review", payload=QUESTION)


def test_agents_score_by_coverage_and_wild_likes_long_drafts() -> None:
    thorough = draft("thorough", QUESTION)
    assert (score("terse", QUESTION, thorough), score("wild", QUESTION, thorough)) == (8, 10)
    assert score("thorough", QUESTION, draft("wild", QUESTION)) == 0


async def test_the_best_scored_draft_is_kept_and_nobody_scores_its_own() -> None:
    app = build()
    async with TestApp(app, [a for a in app.agents if not a.endswith("-slow")]) as t:  # slow: never in time
        run = await t.start("review", _case("q1"))
        await t.advance(2)  # the drafting window closes without slow's draft
        assert t.result("review", run).result == f"thorough (9.0 from 2 peers): {draft('thorough', QUESTION)}"
        for agent in ("terse", "thorough", "wild"):
            assert t.stats(f"propose-{agent}").processed == 1
            assert t.stats(f"score-{agent}").processed == 2, "each scores the two other drafts"
        journal = t.journal("review", run)
        assert journal is not None
        assert not [s for s in journal.steps if s.name.startswith("score-") and s.name.endswith("-slow")]


async def test_with_fewer_than_two_drafts_in_time_the_review_fails() -> None:
    app = build(swarm={"terse": 0.01, **{k: v for k, v in SWARM.items() if k == "slow"}})
    async with TestApp(app, [a for a in app.agents if not a.endswith("-slow")]) as t:
        run = await t.start("review", _case("q1"))
        await t.advance(2)
        with pytest.raises(WorkflowFailed, match="1 of 2 answered in time, 2 needed"):
            t.result("review", run)
