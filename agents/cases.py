"""A stream of support cases for the supervisor workflow (agents/supervisor.py), as `make demo` feeds it.

    streams run agents.supervisor:app                          # the engine and its three specialists
    python -m agents.cases --rate 3 --seconds 20 --out cases.tsv

It starts a ``triage`` workflow per case at a steady rate, each under a readable id
(``case-<run>-<n>``) and a correlation id of its own, waits for every report (until ``--settle``
seconds after the last start), prints one line per case and a summary, and writes each case's id,
correlation id, outcome and seconds to ``--out`` (tab-separated), so a case can be followed with
``streams workflow show agents.supervisor:app triage ID`` and ``streams trace CORRELATION_ID --app
agents.supervisor:app``. Exit code 0 when every case completed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from agents.supervisor import app
from streams import CallTimeout, Client, WorkflowFailed
from streams.events import TaskRequested

WORKFLOW = "triage"

# What customers write in; the planner picks up to three words of each and routes each to research,
# legal or analytics (agents.supervisor.ROUTES).
CASES = (
    "payments are failing in EU",
    "login times out for mobile users",
    "invoices show the wrong currency",
    "search returns nothing after upgrade",
    "exports stall above large sizes",
    "password resets never arrive",
    "dashboard charts render blank",
    "webhooks retry forever after errors",
    "GDPR complaints about exported data",  # for legal
    "churn rising since latency doubled",  # for analytics
)


@dataclass(frozen=True)
class Outcome:
    """How one case ended: ``completed``, ``failed`` or ``unfinished`` (no end before the deadline)."""

    workflow_id: str
    correlation_id: str
    status: str
    seconds: float
    detail: str

    def row(self) -> str:
        return f"{self.workflow_id}\t{self.correlation_id}\t{self.status}\t{self.seconds:.3f}\n"


async def _outcome(
    client: Client, workflow_id: str, correlation_id: str, started: float, deadline: float
) -> Outcome:
    loop = asyncio.get_running_loop()
    try:
        report = await client.result(WORKFLOW, workflow_id, timeout=max(0.1, deadline - loop.time()))
        status, detail = "completed", str(report.result)
    except WorkflowFailed as exc:
        status, detail = "failed", str(exc)
    except CallTimeout:
        status, detail = "unfinished", "no end before the feeder stopped waiting"
    outcome = Outcome(workflow_id, correlation_id, status, loop.time() - started, detail)
    print(f"{workflow_id} {status} in {outcome.seconds:.2f} s: {detail}", flush=True)
    return outcome


async def feed(rate: float, seconds: float, settle: float) -> list[Outcome]:
    """Start ``rate`` cases a second for ``seconds``; every case's outcome, in the order started."""
    loop = asyncio.get_running_loop()
    run = secrets.token_hex(3)  # a new id per run: starting an id that exists changes nothing
    total = max(1, round(rate * seconds))
    began = loop.time()
    deadline = began + seconds + settle
    waiting: list[asyncio.Task[Outcome]] = []
    async with Client(app) as client:
        for n in range(total):
            await asyncio.sleep(max(0.0, began + n / rate - loop.time()))
            workflow_id = f"case-{run}-{n + 1:03d}"
            correlation_id = uuid.uuid4().hex
            case = TaskRequested(task_id=workflow_id, capability=WORKFLOW, payload=CASES[n % len(CASES)])
            started = loop.time()
            await client.start(WORKFLOW, case, workflow_id=workflow_id, correlation_id=correlation_id)
            waiting.append(
                asyncio.create_task(_outcome(client, workflow_id, correlation_id, started, deadline))
            )
        return list(await asyncio.gather(*waiting))


def summary(outcomes: list[Outcome], fed_for: float) -> str:
    done = [o.seconds for o in outcomes if o.status == "completed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("completed", "failed", "unfinished")}
    line = f"cases: {len(outcomes)} started over {fed_for:.1f} s; " + ", ".join(
        f"{n} {status}" for status, n in counts.items()
    )
    if done:
        line += f"; start to report p50 {statistics.median(done):.2f} s, max {max(done):.2f} s"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.cases", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=3.0, help="cases started per second (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to start cases (default 20)")
    parser.add_argument(
        "--settle", type=float, default=20.0, help="seconds to wait for reports after the last start"
    )
    parser.add_argument("--out", type=Path, help="write each case's ids, outcome and seconds here (TSV)")
    args = parser.parse_args(argv)
    if not (args.rate > 0 and args.seconds > 0 and args.settle > 0):
        parser.error("--rate, --seconds and --settle must be positive")
    outcomes = asyncio.run(feed(args.rate, args.seconds, args.settle))
    if args.out is not None:
        args.out.write_text("".join(o.row() for o in outcomes))
    print(summary(outcomes, (len(outcomes) - 1) / args.rate), flush=True)
    return 0 if all(o.status == "completed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
