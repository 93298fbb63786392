"""Summarise a py-spy raw (collapsed stacks) profile: ``python -m bench.profile_summary FILE [--top N]``.

Prints samples per thread, then for the busiest thread (or ``--thread NAME``) the functions with the
most samples on top of the stack (self) and anywhere in the stack (inclusive), as shares of that
thread's samples. Idle time (waiting in ``select``/``epoll``) shows up as such.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``: lines merged, so a function is one row."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    short = "/".join(file.split("/")[-2:]) if file else "?"
    return f"{match['func']} ({short})"


def load(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    by_thread: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0]
        if thread.startswith("process "):
            frames = frames[1:]
            thread = frames[0]
        name = thread.split(":", 1)[-1].strip() if ":" in thread else thread
        by_thread[name].append(([_name(f) for f in frames[1:]], int(count)))
    return by_thread


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", help="thread name (default: the one with most samples)")
    args = parser.parse_args(argv)
    threads = load(args.file)
    totals = {name: sum(c for _, c in stacks) for name, stacks in threads.items()}
    print("samples per thread:")
    for name, total in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {total:8d}  {name}")
    chosen = args.thread or max(totals, key=lambda n: totals[n])
    stacks = threads[chosen]
    total = totals[chosen]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"\n{chosen}: {total} samples; self (top of stack):")
    for frame, count in own.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print(f"\n{chosen}: inclusive:")
    for frame, count in inclusive.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
