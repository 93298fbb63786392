"""Per-step retries of a workflow: a failed or timed-out step is asked again after a durable backoff.

Distinct from a specialist's own retries (in its process, within one request): these span requests.
The policy is journaled with the step when the code first asks for it, and every decision is made
from the journal alone: the backoff's jitter is drawn from the step's request id, so whoever applies
the same answer to the same journal computes the same due time, and a crash cannot change the plan.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from streams import headers as hdr
from streams.errors import RETRIED_KINDS, ErrorKind
from streams.events import JournalStep, StepRetry, WorkflowJournal
from streams.retry import Retry


def step_retry(policy: Retry) -> StepRetry:
    """The part of a :class:`Retry` the journal keeps (a classifier is code: it ran where the error
    happened, and its verdict came back with the answer)."""
    return StepRetry(
        attempts=policy.attempts,
        backoff_ms=int(policy.backoff * 1000),
        max_backoff_ms=int(policy.max_backoff * 1000),
        jitter=policy.jitter,
    )


def retry_due(
    journal: WorkflowJournal, step: JournalStep, kind: ErrorKind | None, at: datetime
) -> datetime | None:
    """When ``step``, which failed (or timed out) at ``at`` with an error of ``kind``, is to be asked
    again; None if it is not: no policy, tries used up, an error retrying cannot fix, or a due time
    past the workflow's own deadline."""
    policy = step.retry
    tries = max(step.tries, 1)
    if policy is None or tries >= policy.attempts:
        return None
    kind = kind or ErrorKind.TRANSIENT  # no verdict (an older specialist): the retry asked for stands
    if kind not in RETRIED_KINDS:
        return None
    retry = Retry(
        attempts=policy.attempts,
        backoff=policy.backoff_ms / 1000,
        max_backoff=policy.max_backoff_ms / 1000,
        jitter=policy.jitter,
    )
    draw = random.Random(step.request_id or f"{journal.workflow_id}/{step.started_at}").random()
    due = at + timedelta(seconds=retry.delay(tries, kind, draw))
    if journal.deadline is not None and due >= journal.deadline:
        return None
    return due


def retry_request_id(workflow_id: str, workflow: str, position: int, tries: int) -> str:
    """The id of try number ``tries`` (from 2) of the step at ``position``: new for each try, so a late
    answer to an earlier try is recognised as no answer to this one."""
    return hdr.derived_id(workflow_id, f"{workflow}#try{tries}", position)
