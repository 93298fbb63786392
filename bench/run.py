"""Run the benchmark: ``python -m bench.run [--messages N] [--only NAME,...] [--scenarios pipeline,io]``.

Scenarios (one partition, 1,000 keys, Avro in the Confluent wire format, at-least-once unless a row
says otherwise; see bench/scenarios.py):

- ``pipeline``: 3 stages, TaskRequested -> TaskRequested -> TaskRequested -> TaskCompleted;
- ``io``: 1 stage whose handler waits 10 ms per message (a model call) before producing its result;
- ``windows`` (not run by default): a count per key in 10-second tumbling windows of event time,
  MetricSample -> one WindowSummary per key and window, sent when the window closes; the results are
  checked, and a contender with a wrong answer fails.
- ``workflows`` (not run by default): N durable three-step workflows started and awaited by a client,
  ours (engine + specialists) and Restate's (see bench/workflows.py); its own table: workflows/s and
  latency per workflow, every result checked.

Every contender runs alone in its own process on fresh topics, one after another, in this one run.
Peers (faust-streaming, quixstreams) run from bench/.venv (see bench/requirements.txt); a missing peer
is reported on one line and skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import workflows
from bench.harness import REPO, Harness, Result, RunSpec
from bench.scenarios import KEYS, all_scenarios

PEER_PYTHON = REPO / "bench" / ".venv" / "bin" / "python"
INSTALL_HINT = ".venv/bin/python -m venv bench/.venv && bench/.venv/bin/pip install -r bench/requirements.txt"
OURS = "streams"


@dataclass(frozen=True)
class Contender:
    name: str
    module: str
    requires: str  # module that must import in its interpreter
    dist: str  # distribution whose version the header line shows
    peer: bool  # runs from bench/.venv
    sequential: bool  # handles a partition one message at a time (io scenario: fewer messages)
    how: str  # shown in the notes column
    ours: bool = False  # a streams variant: takes --pipeline-concurrency / --io-concurrency
    options: dict[str, Any] = field(default_factory=dict)
    scenarios: tuple[str, ...] = ("pipeline", "io", "windows")
    notes: dict[str, str] = field(default_factory=dict)  # scenario -> how it runs there, instead of how
    extra: bool = False  # not run unless named in --only or --extras given
    env: dict[str, str] = field(default_factory=dict)  # environment of the contender's process


CONTENDERS = [
    Contender(OURS, "bench.contenders.streams_impl", "streams", "confluent-kafka", peer=False,
              sequential=False, ours=True, how="at-least-once",
              notes={"windows": "app.windowed, Tumbling; tables in memory + changelog topics; "
                                "at-least-once"}),
    Contender("streams-eos", "bench.contenders.streams_impl", "streams", "confluent-kafka", peer=False,
              sequential=False, ours=True, how="exactly-once (transactions)",
              options={"guarantee": "exactly_once"}, extra=True,
              notes={"windows": "app.windowed, Tumbling; tables in memory + changelog topics; "
                                "exactly-once (transactions)"}),
    # The cost of tracing, on our own pipeline: no tracing middleware at all; the default (context
    # propagated, nothing recorded); every message sampled and every span exported (as JSON lines).
    Contender("streams-trace-off", "bench.contenders.streams_impl", "streams", "confluent-kafka",
              peer=False, sequential=False, ours=True, how="tracing off (STREAMS_TRACING=false)",
              env={"STREAMS_TRACING": "false"}, scenarios=("pipeline",), extra=True),
    Contender("streams-trace-sampled", "bench.contenders.streams_impl", "streams", "confluent-kafka",
              peer=False, sequential=False, ours=True,
              how="100% sampled, spans exported as JSON lines to /dev/null",
              env={"STREAMS_TRACES_FILE": "/dev/null", "OTEL_TRACES_SAMPLER": "always_on"},
              scenarios=("pipeline",), extra=True),
    Contender("raw-confluent", "bench.contenders.raw_confluent", "confluent_kafka", "confluent-kafka",
              peer=False, sequential=True, how="hand-written loop, 1 thread, commit after flush",
              notes={"windows": "hand-written loop, counts in a dict: no state durability; "
                                "commit after flush"}),
    Contender("faust", "bench.contenders.faust_impl", "faust", "faust-streaming", peer=True,
              sequential=True, how="one agent per stage (aiokafka)", scenarios=("pipeline", "io")),
    Contender("quix", "bench.contenders.quix_impl", "quixstreams", "quixstreams", peer=True,
              sequential=True, how="one StreamingDataFrame per stage",
              notes={"windows": "tumbling_window().count().final(), closing per key (its default); "
                                "RocksDB + changelog topics (its default); at-least-once"}),
]


def _python(contender: Contender) -> str:
    return str(PEER_PYTHON) if contender.peer else sys.executable


def _missing(contender: Contender) -> str | None:
    """Why this contender cannot run here, or None."""
    python = _python(contender)
    if contender.peer and not PEER_PYTHON.exists():
        return f"bench/.venv does not exist; install the peers: {INSTALL_HINT}"
    probe = subprocess.run(
        [python, "-W", "ignore", "-c", f"import {contender.requires}"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"cannot import {contender.requires} ({last}); install the peers: {INSTALL_HINT}"
    return None


def _version(python: str, module: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    probe = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    return probe.stdout.strip() or "?"


def _revision() -> str:
    """The commit measured, and whether streams/ had uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=REPO, timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "streams"], capture_output=True,
                               text=True, cwd=REPO, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return f"streams at {head}" + (" + uncommitted changes" if dirty else "")


def _median(results: list[Result]) -> Result:
    ok = [r for r in results if r.status == "ok"]
    if not ok:
        return results[-1]
    ok.sort(key=lambda r: r.seconds or 0.0)
    chosen = ok[len(ok) // 2]
    if len(results) > 1:
        rates = ", ".join(f"{r.rate:,.0f}" for r in ok if r.rate)
        chosen.note = f"{chosen.note}; median of {len(ok)}/{len(results)} runs ({rates} msg/s)"
    return chosen


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rows(results: list[Result]) -> list[list[str]]:
    ours = {r.scenario: r.rate for r in results if r.contender == OURS and r.rate}
    rows = []
    for r in results:
        ratio = None if r.rate is None or r.scenario not in ours else ours[r.scenario] / r.rate
        rows.append([
            r.scenario,
            r.contender,
            f"{r.messages:,}",
            _fmt(r.seconds, ".2f"),
            _fmt(r.rate, ",.0f"),
            "-" if ratio is None else f"{ratio:.2f}x",
            _fmt(r.cpu_per_million, ",.0f"),
            _fmt(r.peak_rss_mb, ".0f"),
            r.note if r.status == "ok" else f"{r.status}: {r.note[-300:]}",
        ])
    return rows


HEADERS = ["scenario", "contender", "messages", "seconds", "msg/s", "ours ÷ this", "CPU-s / 1M msgs",
           "peak RSS MB", "notes"]


def markdown(results: list[Result]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * len(HEADERS)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in _rows(results)]
    return "\n".join(lines)


def _median_workflows(results: list[workflows.WorkflowResult]) -> workflows.WorkflowResult:
    ok = sorted((r for r in results if r.status == "ok"), key=lambda r: r.seconds or 0.0)
    if not ok:
        return results[-1]
    chosen = ok[len(ok) // 2]
    if len(results) > 1:
        rates = ", ".join(f"{r.rate:,.0f}" for r in ok if r.rate)
        chosen.note = f"{chosen.note}; median of {len(ok)}/{len(results)} runs ({rates} wf/s)"
    return chosen


def _run_workflows(
    console: Console,
    harness: Harness,
    contenders: list[workflows.WorkflowContender],
    args: argparse.Namespace,
) -> list[workflows.WorkflowResult]:
    """Each concurrency level, each contender at it in turn (side by side), ``--repeat`` times."""
    bench = workflows.WorkflowBench(harness, timeout=args.timeout, profile=args.profile, keep=args.keep)
    results = []
    for concurrency in args.workflow_concurrency:
        count = min(args.workflows, 100 * concurrency)
        for contender in contenders:
            runs = []
            for attempt in range(args.repeat):
                console.print(f"workflows: {contender.name} ({count:,} workflows, {concurrency} "
                              f"outstanding, run {attempt + 1})...", end=" ")
                result = bench.run(contender, count, concurrency)
                result.note = f"{contender.how}; {result.note}".rstrip("; ")
                runs.append(result)
                console.print(result.status if result.status != "ok" else f"{result.rate:,.1f} workflows/s")
            results.append(_median_workflows(runs))
    return results


def _concurrency_levels(text: str) -> list[int]:
    levels = [int(part) for part in text.split(",") if part.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("one or more positive integers, comma-separated")
    return levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000,
                        help="pipeline and windows input messages (20,000)")
    parser.add_argument("--io-messages", type=int, default=5_000,
                        help="io scenario messages for concurrent contenders (5,000)")
    parser.add_argument("--io-peer-messages", type=int, default=300,
                        help="io scenario messages for partition-sequential contenders (300)")
    parser.add_argument("--pipeline-concurrency", type=int, default=1000,
                        help="streams: concurrency of each pipeline agent (1000, ordering=key)")
    parser.add_argument("--io-concurrency", type=int, default=200,
                        help="streams: concurrency of the io agent (200, ordering=key)")
    parser.add_argument("--window-events", type=int, default=5,
                        help="windows scenario: samples per key per 10-second window (5)")
    parser.add_argument("--workflows", type=int, default=2_000,
                        help="workflows scenario: timed workflows per row (2,000), at most 100 per "
                             "outstanding one (so 100 at concurrency 1)")
    parser.add_argument("--workflow-concurrency", type=_concurrency_levels, default=[100],
                        help="workflows scenario: outstanding workflows, one row per level (100; e.g. 1,100)")
    parser.add_argument("--only", help="comma-separated contenders: " + ", ".join(
        [c.name for c in CONTENDERS] + [f"{c.name} (workflows)" for c in workflows.WORKFLOW_CONTENDERS
                                        if c.name != OURS]))
    parser.add_argument("--extras", action="store_true", help="also run extra rows (streams-eos)")
    parser.add_argument("--scenarios", default="pipeline,io",
                        help="pipeline,io (default), windows, workflows")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the median is shown")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per contender run (300)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    parser.add_argument("--profile", action="store_true",
                        help="sample each contender with py-spy into the logs directory (slows it down)")
    parser.add_argument("--keep", action="store_true", help="keep topics, groups and subjects")
    args = parser.parse_args(argv)

    console = Console() if sys.stdout.isatty() else Console(width=170)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if args.window_events < 1:
        parser.error("--window-events must be at least 1")
    definitions = all_scenarios(window_events=args.window_events)
    unknown = set(scenarios) - set(definitions) - {"workflows"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    names = {n.strip() for n in args.only.split(",")} if args.only else None
    known = {c.name for c in CONTENDERS} | {c.name for c in workflows.WORKFLOW_CONTENDERS}
    if names and names - known:
        parser.error(f"unknown contender(s): {', '.join(sorted(names - known))}")
    relays = [s for s in scenarios if s != "workflows"]
    chosen = [c for c in CONTENDERS
              if relays and (c.name in names if names else (args.extras or not c.extra))]
    flows = [c for c in workflows.WORKFLOW_CONTENDERS
             if "workflows" in scenarios and (not names or c.name in names)]

    runnable: list[Contender] = []
    for contender in chosen:
        why = _missing(contender)
        if why:
            console.print(f"[yellow]skipping {contender.name}: {why}[/]")
        else:
            runnable.append(contender)
    runnable_flows: list[workflows.WorkflowContender] = []
    for flow in flows:
        why = workflows.missing(flow)
        if why:
            console.print(f"[yellow]skipping {flow.name} (workflows): {why}[/]")
        else:
            runnable_flows.append(flow)

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    registry = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
    harness = Harness(bootstrap, registry, timeout=args.timeout, profile=args.profile, scenarios=definitions)
    versions = {"confluent-kafka (ours, raw)": _version(sys.executable, "confluent-kafka")}
    for contender in runnable:
        if contender.peer:
            versions[contender.dist] = _version(str(PEER_PYTHON), contender.dist)
    versions.update(workflows.versions(runnable_flows))
    console.print(
        f"run {harness.run_id}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"broker {bootstrap}; "
        + (f"1 partition, {KEYS:,} keys, Avro (Confluent wire format); every peer at its default "
           f"at-least-once; " if relays else "")
        + f"{_revision()}; " + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    console.print(f"logs and configs: {harness.workdir}")

    results: list[Result] = []
    flow_results: list[workflows.WorkflowResult] = []
    try:
        for scenario in relays:
            for contender in runnable:
                if scenario not in contender.scenarios:
                    continue
                if scenario == "io":
                    count = args.io_peer_messages if contender.sequential else args.io_messages
                else:
                    count = args.messages
                options = dict(contender.options)
                # Windowed agents keep partition order and take no concurrency: one partition here.
                concurrency = {"pipeline": args.pipeline_concurrency, "io": args.io_concurrency}.get(scenario)
                if contender.ours and concurrency is not None:
                    options.setdefault("ordering", "key")
                    options["concurrency"] = concurrency
                spec = RunSpec(
                    scenario, contender.name, contender.module, _python(contender), count, options,
                    env=contender.env,
                )
                how = contender.notes.get(scenario, contender.how)
                if "concurrency" in options:
                    how = f"concurrency {options['concurrency']}, key order, {how}"
                elif scenario == "io":
                    how = f"{how}, 10 ms in sequence"
                runs = []
                for attempt in range(args.repeat):
                    console.print(f"{scenario}: {contender.name} ({count:,} messages, run {attempt + 1})...",
                                  end=" ")
                    try:
                        result = harness.run(spec)
                    except Exception as exc:  # noqa: BLE001 - one broken run must not lose the others
                        result = Result(scenario, contender.name, count, status=f"failed: {exc!r}")
                    result.note = f"{how}; {result.note}".rstrip("; ")
                    runs.append(result)
                    console.print(result.status if result.status != "ok" else f"{result.rate:,.0f} msg/s")
                results.append(_median(runs))
        if runnable_flows:
            flow_results = _run_workflows(console, harness, runnable_flows, args)
    finally:
        if not args.keep:
            problems = harness.cleanup()
            for problem in problems:
                console.print(f"[yellow]cleanup: {problem}[/]")

    if results:
        table = Table(title="streams vs peers (ours ÷ this: >1 means ours is faster)")
        for header in HEADERS:
            left = header in ("scenario", "contender", "notes")
            table.add_column(header, justify="left" if left else "right")
        for row in _rows(results):
            table.add_row(*row)
        console.print(table)
        if args.markdown:
            print(markdown(results))
    if flow_results:
        table = Table(title="workflows: 3 durable steps each (ours ÷ this: >1 means ours is faster)")
        for header in workflows.HEADERS:
            table.add_column(header, justify="left" if header in ("contender", "notes") else "right")
        for row in workflows.rows(flow_results):
            table.add_row(*row)
        console.print(table)
        if args.markdown:
            print(workflows.markdown(flow_results))
    return 0 if all(r.status == "ok" for r in [*results, *flow_results]) else 1


if __name__ == "__main__":
    sys.exit(main())
