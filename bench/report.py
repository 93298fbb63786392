"""The relay scenarios' table: medians of repeated runs, rows, markdown."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bench.harness import Result
from bench.roster import OURS

HEADERS = [
    "scenario",
    "partitions",
    "contender",
    "messages",
    "seconds",
    "msg/s",
    "ours ÷ this",
    "CPU-s / 1M msgs",
    "peak RSS MB",
    "notes",
]


def median(results: list[Result]) -> Result:
    ok = [r for r in results if r.status == "ok"]
    if not ok:
        return results[-1]
    ok.sort(key=lambda r: r.seconds or 0.0)
    chosen = ok[len(ok) // 2]
    if len(results) > 1:
        rates = ", ".join(f"{r.rate:,.0f}" for r in ok if r.rate)
        chosen.note = f"{chosen.note}; median of {len(ok)}/{len(results)} runs ({rates} msg/s)"
    return chosen


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def rows(results: list[Result]) -> list[list[str]]:
    ours = {(r.scenario, r.partitions): r.rate for r in results if r.contender == OURS and r.rate}
    out = []
    for r in results:
        base = ours.get((r.scenario, r.partitions))
        ratio = None if r.rate is None or base is None else base / r.rate
        out.append(
            [
                r.scenario,
                str(r.partitions),
                r.contender,
                f"{r.messages:,}",
                fmt(r.seconds, ".2f"),
                fmt(r.rate, ",.0f"),
                "-" if ratio is None else f"{ratio:.2f}x",
                fmt(r.cpu_per_million, ",.0f"),
                fmt(r.peak_rss_mb, ".0f"),
                r.note if r.status == "ok" else f"{r.status}: {r.note[-300:]}",
            ]
        )
    return out


def markdown(results: list[Result]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * len(HEADERS)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows(results)]
    return "\n".join(lines)


EOS = "streams-eos"


def eos_cost(results: list[Result]) -> list[str]:
    """Exactly-once against at-least-once, ours, wherever both rows finished: the ratios of CPU per
    message and of msg/s (a CPU ratio above 1 and a msg/s ratio below 1 are what exactly-once costs)."""
    rows = {(r.scenario, r.partitions, r.contender): r for r in results if r.status == "ok"}
    lines = []
    for (scenario, partitions, contender), eos in rows.items():
        alo = rows.get((scenario, partitions, OURS))
        if contender != EOS or alo is None or not (alo.rate and eos.rate):
            continue
        cpu = (
            "-"
            if not (alo.cpu_per_million and eos.cpu_per_million)
            else f"{eos.cpu_per_million / alo.cpu_per_million:.2f}x"
        )
        where = f"{scenario}, {partitions} partition{'s' if partitions > 1 else ''}"
        lines.append(
            f"exactly-once ÷ at-least-once, {where}: CPU per message {cpu}, "
            f"msg/s {eos.rate / alo.rate:.2f}x ({eos.rate:,.0f} vs {alo.rate:,.0f})"
        )
    return lines


def show(console: Console, results: list[Result], *, as_markdown: bool) -> None:
    table = Table(title="streams vs peers (ours ÷ this: >1 means ours is faster)")
    for header in HEADERS:
        left = header in ("scenario", "contender", "notes")
        table.add_column(header, justify="left" if left else "right")
    for row in rows(results):
        table.add_row(*row)
    console.print(table)
    costs = eos_cost(results)
    for line in costs:
        console.print(line)
    if as_markdown:
        print(markdown(results))
        if costs:
            print("\n" + "\n".join(f"- {line}" for line in costs))
