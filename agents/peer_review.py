"""Swarm with peer review: several agents propose an answer, the others score each proposal, and the
best-scored one is kept.

    streams run agents.peer_review:app
    streams workflow start agents.peer_review:app review --wait \\
        --input '{"task_id": "q1", "capability": "review", "payload": "why was the refund late"}'

Each agent of the swarm has two capabilities: ``propose-<name>`` (draft an answer) and
``score-<name>`` (score a draft from 0 to 10). The ``review`` workflow asks every agent for a draft at
once and keeps the drafts that arrive within ``WINDOW`` seconds (``wf.gather_within``, at least 2).
Each draft is then scored by every *other* agent that proposed in time (nobody scores its own), again
in parallel and within the window; the draft with the best mean score wins (ties: the proposer's
name, first in alphabetical order). Every step is journaled, so a restart mid-review neither asks
nor scores anything twice.

Agents stand in for models with different habits: ``terse`` answers in a few words, ``thorough`` at
length, ``wild`` off topic, ``slow`` well but after 5 s, past the window. Each scores drafts by
how many of the question's words they cover (``wild`` also likes long ones).
"""

from __future__ import annotations

import asyncio

from streams import App, Context, Workflow
from streams.events import TaskCompleted, TaskRequested, TaskStatus

WINDOW = 2.0  # seconds to wait for drafts, then for scores
SWARM = {"terse": 0.01, "thorough": 0.01, "wild": 0.01, "slow": 5.0}  # name: seconds to draft


def _done(task: TaskRequested, agent: str, result: str) -> TaskCompleted:
    return TaskCompleted(task_id=task.task_id, agent=agent, status=TaskStatus.SUCCEEDED, result=result)


def draft(name: str, question: str) -> str:
    """What agent ``name`` proposes for ``question``."""
    words = question.split()
    if name == "terse":
        return " ".join(words[-2:])
    if name == "wild":
        return "have you tried turning it off and on again"
    return f"about {' '.join(words)}: checked the logs, found the cause, fixed it"


def score(name: str, question: str, proposal: str) -> int:
    """Agent ``name``'s score of ``proposal`` for ``question``, 0 to 10."""
    asked = set(question.split())
    covered = 10 * len(asked & set(proposal.split())) // max(1, len(asked))
    return min(10, covered + (len(proposal.split()) // 5 if name == "wild" else 0))


def _agent(app: App, name: str, delay: float) -> None:
    @app.specialist(f"propose-{name}", input=TaskRequested, output=TaskCompleted, concurrency=8)
    async def propose(question: TaskRequested, ctx: Context) -> TaskCompleted:
        await asyncio.sleep(delay)
        return _done(question, name, draft(name, question.payload))

    @app.specialist(f"score-{name}", input=TaskRequested, output=TaskCompleted, concurrency=8)
    async def grade(review: TaskRequested, ctx: Context) -> TaskCompleted:
        question, _, proposal = review.payload.partition("\n")
        await asyncio.sleep(0.01)
        return _done(review, name, str(score(name, question, proposal)))


def build(name: str = "swarm", swarm: dict[str, float] = SWARM) -> App:
    """The app, named ``name``, with the agents ``swarm`` (name: seconds each takes to draft)."""
    app = App(name)
    for agent, delay in swarm.items():
        _agent(app, agent, delay)

    @app.workflow(input=TaskRequested, output=TaskCompleted)
    async def review(case: TaskRequested, wf: Workflow) -> TaskCompleted:
        asks = [wf.call(f"propose-{agent}", case) for agent in swarm]
        drafts = (await wf.gather_within(*asks, timeout=WINDOW, at_least=2)).answered
        scored = []
        for i, proposal in enumerate(drafts):
            peers = [d.agent for d in drafts if d.agent != proposal.agent]
            reviews = [
                wf.call(
                    f"score-{peer}",
                    TaskRequested(
                        task_id=f"{case.task_id}/{i}/{peer}",
                        capability="score",
                        payload=f"{case.payload}\n{proposal.result}",
                    ),
                )
                for peer in peers
            ]
            scored.append((reviews, proposal))
        means = []
        for reviews, proposal in scored:  # every score was asked for above, so all run in parallel
            scores = (await wf.gather_within(*reviews, timeout=WINDOW, at_least=1)).answered
            means.append((sum(int(s.result or 0) for s in scores) / len(scores), proposal.agent, proposal))
        mean, _, best = min(means, key=lambda m: (-m[0], m[1]))
        return _done(case, "review", f"{best.agent} ({mean:.1f} from {len(drafts) - 1} peers): {best.result}")

    return app


app = build()
