"""Run the benchmark: ``python -m bench.run [--messages N] [--only NAME,...] [--scenarios pipeline,io]``.

Scenarios (one partition unless ``--partitions``, 1,000 keys, Avro in the Confluent wire format,
at-least-once unless a row says otherwise; see bench/scenarios.py):

- ``pipeline``: 3 stages, TaskRequested -> TaskRequested -> TaskRequested -> TaskCompleted;
- ``io``: 1 stage whose handler waits 10 ms per message (a model call) before producing its result;
- ``windows`` (not run by default): a count per key in 10-second tumbling windows of event time,
  MetricSample -> one WindowSummary per key and window, sent when the window closes; the results are
  checked, and a contender with a wrong answer fails.
- ``backlog`` (not run by default): the pipeline with a large preloaded input (``--backlog-messages``,
  200,000), for the peak RSS of each contender while it works through it;
- ``latency`` (not run by default): the pipeline under a steady offered load at shares of a maximum
  rate, end-to-end latency per message, p50/p99 (see bench/latency.py); its own table;
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
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import latency, report, workflows
from bench.harness import REPO, Harness, Result, RunSpec
from bench.latency import LatencyBench, LatencyResult
from bench.roster import CONTENDERS, OURS, PEER_PYTHON, Contender, missing, python_for, version
from bench.scenarios import KEYS, all_scenarios


def _revision() -> str:
    """The commit measured, and whether streams/ had uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "streams"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return f"streams at {head}" + (" + uncommitted changes" if dirty else "")


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
                console.print(
                    f"workflows: {contender.name} ({count:,} workflows, {concurrency} "
                    f"outstanding, run {attempt + 1})...",
                    end=" ",
                )
                result = bench.run(contender, count, concurrency)
                result.note = f"{contender.how}; {result.note}".rstrip("; ")
                runs.append(result)
                console.print(result.status if result.status != "ok" else f"{result.rate:,.1f} workflows/s")
            results.append(_median_workflows(runs))
    return results


def _run_relays(
    console: Console,
    harness: Harness,
    runnable: list[Contender],
    scenarios: list[str],
    args: argparse.Namespace,
) -> list[Result]:
    """Each scenario, each partition count (windows: 1), each contender in turn, ``--repeat`` times."""
    results: list[Result] = []
    for scenario in scenarios:
        counts = args.partitions if harness.scenarios[scenario].partitioned else [1]
        for partitions in counts:
            for contender in runnable:
                if scenario in contender.scenarios:
                    results.append(_run_relay(console, harness, contender, scenario, partitions, args))
    return results


def _run_relay(
    console: Console,
    harness: Harness,
    contender: Contender,
    scenario: str,
    partitions: int,
    args: argparse.Namespace,
) -> Result:
    if scenario == "io":
        count = args.io_peer_messages if contender.sequential else args.io_messages
    else:
        count = args.backlog_messages if scenario == "backlog" else args.messages
    options, how = _options(harness, contender, scenario, args)
    spec = RunSpec(
        scenario,
        contender.name,
        contender.module,
        python_for(contender),
        count,
        options,
        env=contender.env,
        partitions=partitions,
    )
    runs = []
    for attempt in range(args.repeat):
        console.print(
            f"{scenario}: {contender.name} ({count:,} messages, {partitions} partition"
            f"{'s' if partitions > 1 else ''}, run {attempt + 1})...",
            end=" ",
        )
        try:
            result = harness.run(spec)
        except Exception as exc:  # noqa: BLE001 - one broken run must not lose the others
            result = Result(scenario, contender.name, count, status=f"failed: {exc!r}", partitions=partitions)
        if scenario == "backlog":
            overload = f" = {count / result.rate:,.0f}x its msg/s" if result.rate else ""
            backlog = f"backlog of {count:,}{overload}, peak RSS while draining it"
            result.note = f"{backlog}; {result.note}".rstrip("; ")
        result.note = f"{how}; {result.note}".rstrip("; ")
        runs.append(result)
        console.print(result.status if result.status != "ok" else f"{result.rate:,.0f} msg/s")
    return report.median(runs)


def _options(
    harness: Harness, contender: Contender, scenario: str, args: argparse.Namespace
) -> tuple[dict[str, Any], str]:
    """The contender's options in ``scenario`` and how it runs there (the notes column)."""
    options = dict(contender.options)
    # Windowed agents keep partition order and take no concurrency.
    kind = harness.scenarios[scenario].kind
    concurrency = {"pipeline": args.pipeline_concurrency, "io": args.io_concurrency}.get(kind)
    if contender.ours and concurrency is not None:
        options.setdefault("ordering", "key")
        options["concurrency"] = concurrency
    how = contender.notes.get(scenario, contender.how)
    if "concurrency" in options:
        how = f"concurrency {options['concurrency']}, key order, {how}"
    elif kind == "io":
        how = f"{how}, 10 ms in sequence"
    return options, how


def _run_latency(
    console: Console,
    harness: Harness,
    runnable: list[Contender],
    measured: list[Result],
    args: argparse.Namespace,
) -> list[LatencyResult]:
    """Each partition count, each load, each contender with a latency row in turn (one run each)."""
    bench = LatencyBench(harness, args.latency_seconds)
    results = []
    for partitions in args.partitions:
        maximum, source = args.latency_max, "--latency-max"
        if not maximum:
            ours = [
                r.rate
                for r in measured
                if r.contender == OURS and r.scenario == "pipeline" and r.partitions == partitions and r.rate
            ]
            maximum, source = (ours[0], "streams' pipeline row") if ours else (None, "")
        if not maximum:
            console.print(
                f"[yellow]latency, {partitions} partition(s): no maximum rate (the streams "
                f"pipeline row did not finish); skipped[/]"
            )
            continue
        for load in args.latency_loads:
            rate = maximum * load / 100
            for contender in runnable:
                if "latency" not in contender.scenarios:
                    continue
                options, how = _options(harness, contender, "latency", args)
                spec = RunSpec(
                    "latency",
                    contender.name,
                    contender.module,
                    python_for(contender),
                    0,
                    options,
                    env=contender.env,
                    partitions=partitions,
                )
                console.print(
                    f"latency: {contender.name} ({rate:,.0f} msg/s = {load}% of {maximum:,.0f} "
                    f"for {args.latency_seconds:g} s, {partitions} partition(s))...",
                    end=" ",
                )
                try:
                    result = bench.run(spec, rate, load)
                except Exception as exc:  # noqa: BLE001 - one broken run must not lose the others
                    result = LatencyResult(
                        contender.name, partitions, load, rate, 0, status=f"failed: {exc!r}"
                    )
                result.note = f"{how}; max {maximum:,.0f} msg/s from {source}; {result.note}".rstrip("; ")
                results.append(result)
                p50, p99 = result.percentile(0.5), result.percentile(0.99)
                console.print(
                    result.status
                    if p50 is None or p99 is None
                    else f"{result.status}: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms"
                )
    return results


def _plural(counts: list[int], noun: str) -> str:
    return f"{', '.join(map(str, counts))} {noun}{'s' if counts != [1] else ''}"


def _concurrency_levels(text: str) -> list[int]:
    levels = [int(part) for part in text.split(",") if part.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("one or more positive integers, comma-separated")
    return levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--messages", type=int, default=20_000, help="pipeline and windows input messages (20,000)"
    )
    parser.add_argument(
        "--backlog-messages",
        type=int,
        default=200_000,
        help="backlog scenario: messages preloaded before the contender starts (200,000)",
    )
    parser.add_argument(
        "--latency-max",
        type=float,
        help="latency scenario: the maximum rate (msg/s) the loads are shares of (default: "
        "streams' pipeline msg/s measured in this run, at the same partition count)",
    )
    parser.add_argument(
        "--latency-loads",
        type=_concurrency_levels,
        default=[25, 50, 75],
        help="latency scenario: offered loads in percent of the maximum, one row each (25,50,75)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=20.0,
        help="latency scenario: how long each load is offered (20 s)",
    )
    parser.add_argument(
        "--io-messages",
        type=int,
        default=5_000,
        help="io scenario messages for concurrent contenders (5,000)",
    )
    parser.add_argument(
        "--io-peer-messages",
        type=int,
        default=300,
        help="io scenario messages for partition-sequential contenders (300)",
    )
    parser.add_argument(
        "--partitions",
        type=_concurrency_levels,
        default=[1],
        help="partitions of every topic, one row per count (1; e.g. 1,6); pipeline and io "
        "(windows: always 1)",
    )
    parser.add_argument(
        "--pipeline-concurrency",
        type=int,
        default=1000,
        help="streams: concurrency of each pipeline agent (1000, ordering=key)",
    )
    parser.add_argument(
        "--io-concurrency",
        type=int,
        default=200,
        help="streams: concurrency of the io agent (200, ordering=key)",
    )
    parser.add_argument(
        "--window-events",
        type=int,
        default=5,
        help="windows scenario: samples per key per 10-second window (5)",
    )
    parser.add_argument(
        "--workflows",
        type=int,
        default=2_000,
        help="workflows scenario: timed workflows per row (2,000), at most 100 per "
        "outstanding one (so 100 at concurrency 1)",
    )
    parser.add_argument(
        "--workflow-concurrency",
        type=_concurrency_levels,
        default=[100],
        help="workflows scenario: outstanding workflows, one row per level (100; e.g. 1,100)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated contenders: "
        + ", ".join(
            [c.name for c in CONTENDERS]
            + [f"{c.name} (workflows)" for c in workflows.WORKFLOW_CONTENDERS if c.name != OURS]
        ),
    )
    parser.add_argument("--extras", action="store_true", help="also run extra rows (streams-eos)")
    parser.add_argument(
        "--scenarios",
        default="pipeline,io",
        help="pipeline,io (default), windows, backlog, latency, workflows",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the median is shown")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per contender run (300)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample each contender with py-spy into the logs directory (slows it down)",
    )
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
    relays = [s for s in scenarios if s not in ("workflows", "latency")]
    timed = "latency" in scenarios
    if timed and not args.latency_max and "pipeline" not in relays:
        parser.error(
            "the latency scenario needs --latency-max RATE, or the pipeline scenario in the same "
            "run (streams' pipeline msg/s is then the maximum)"
        )
    chosen = [
        c
        for c in CONTENDERS
        if (relays or timed) and (c.name in names if names else (args.extras or not c.extra))
    ]
    flows = [
        c
        for c in workflows.WORKFLOW_CONTENDERS
        if "workflows" in scenarios and (not names or c.name in names)
    ]

    runnable: list[Contender] = []
    for contender in chosen:
        why = missing(contender)
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
    versions = {"confluent-kafka (ours, raw)": version(sys.executable, "confluent-kafka")}
    for contender in runnable:
        if contender.peer:
            versions[contender.dist] = version(str(PEER_PYTHON), contender.dist)
    versions.update(workflows.versions(runnable_flows))
    console.print(
        f"run {harness.run_id}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"broker {bootstrap}; "
        + (
            f"{_plural(args.partitions, 'partition')}, {KEYS:,} keys, Avro (Confluent wire format); "
            f"every peer at its default at-least-once; "
            if relays or timed
            else ""
        )
        + f"{_revision()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    console.print(f"logs and configs: {harness.workdir}")

    results: list[Result] = []
    timed_results: list[LatencyResult] = []
    flow_results: list[workflows.WorkflowResult] = []
    try:
        results = _run_relays(console, harness, runnable, relays, args)
        if timed:
            timed_results = _run_latency(console, harness, runnable, results, args)
        if runnable_flows:
            flow_results = _run_workflows(console, harness, runnable_flows, args)
    finally:
        if not args.keep:
            problems = harness.cleanup()
            for problem in problems:
                console.print(f"[yellow]cleanup: {problem}[/]")

    if results:
        report.show(console, results, as_markdown=args.markdown)
    if timed_results:
        latency.show(console, timed_results, as_markdown=args.markdown)
    if flow_results:
        table = Table(title="workflows: 3 durable steps each (ours ÷ this: >1 means ours is faster)")
        for header in workflows.HEADERS:
            table.add_column(header, justify="left" if header in ("contender", "notes") else "right")
        for row in workflows.rows(flow_results):
            table.add_row(*row)
        console.print(table)
        if args.markdown:
            print(workflows.markdown(flow_results))
    return 0 if all(r.status == "ok" for r in [*results, *timed_results, *flow_results]) else 1


if __name__ == "__main__":
    sys.exit(main())
