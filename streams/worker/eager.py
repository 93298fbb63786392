"""Start a coroutine as a task that runs at once, in the caller's turn of the loop, until it first waits.

Most handlers never wait on anything: they decode, compute and queue their outputs. Run eagerly, such a
handler finishes inside the call that started it, costing neither a turn of the event loop nor the
wake-up of whoever started it. It is still a real task from its first instruction (Python 3.12's
``eager_start``), so ``asyncio.current_task()``, ``asyncio.timeout()`` and context variables behave as
in any task. This is why the project needs Python 3.12: on the 3-stage pipeline benchmark it roughly
doubles throughput over lazily started tasks (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def start_task(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task running ``coroutine``, started already (and possibly done) when this returns."""
    return asyncio.Task(coroutine, loop=loop, eager_start=True)
