"""Start a coroutine as a task that runs at once, in the caller's turn of the loop, until it first waits.

Most handlers never wait on anything: they decode, compute and queue their outputs. Run eagerly, such a
handler finishes inside the call that started it, costing neither a turn of the event loop nor the
wake-up of whoever started it. Python 3.12 added eager tasks to asyncio (``eager_start=True``: a real
task from the first instruction, so ``asyncio.current_task()``, ``asyncio.timeout()`` and context
variables behave as in any task). On 3.11 this falls back to an ordinary task, started by the loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

EAGER = sys.version_info >= (3, 12)
"""Whether :func:`start_task` runs the coroutine at once (Python 3.12+)."""


def start_task(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task running ``coroutine``: on 3.12+ started already (and possibly done) when this returns."""
    if sys.version_info >= (3, 12):
        return asyncio.Task(coroutine, loop=loop, eager_start=True)
    return loop.create_task(coroutine)
