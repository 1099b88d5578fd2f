"""Bounded waits for the end of a cell: wait for tasks, cancel what is left, and never wait past a limit.

Cancelling a task is a request that the code inside it can lose: anyio before 4.16 (under httpx) swallows a
native ``Task.cancel()`` that lands in the same event-loop iteration as one of its own cancel-scope
cancellations (anyio issue #1214; ``anyio.connect_tcp`` cancels its happy-eyeballs task group on every
successful connect). So waiting for a cancelled task to finish can wait for ever. :func:`settle` waits
with :func:`asyncio.wait` (which never cancels and always returns by its timeout), and returns the tasks
that are still running so the caller can say so instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

__all__ = ["CANCEL_GRACE_S", "bounded", "settle"]

T = TypeVar("T")

CANCEL_GRACE_S = 2.0  # after a cancel, how long a task gets to unwind (an HTTP client closing its socket)


def _observe(task: asyncio.Future) -> None:
    """Retrieve a finished task's exception, so that none is logged as 'never retrieved'."""
    if not task.cancelled():
        task.exception()


async def settle(tasks: Iterable[asyncio.Future], timeout_s: float, *,
                 grace_s: float = CANCEL_GRACE_S) -> set[asyncio.Future]:
    """Wait up to ``timeout_s`` for ``tasks``; cancel those still running and give them ``grace_s`` more.
    Returns the tasks still not done (left running; their exceptions are retrieved whenever they end).

    Never raises for a task's failure and never waits longer than ``timeout_s + grace_s``.
    """
    tasks = set(tasks)
    pending = {t for t in tasks if not t.done()}
    if pending and timeout_s > 0:
        _, pending = await asyncio.wait(pending, timeout=timeout_s)
    if pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=grace_s)
    for t in tasks:
        if t in pending:
            t.add_done_callback(_observe)
        else:
            _observe(t)
    return pending


async def bounded(aw: Awaitable[T], timeout_s: float) -> tuple[bool, T | None]:
    """(True, result) of ``aw`` if it finished within ``timeout_s``, else (False, None) with it cancelled
    (and left to end on its own if it ignores that). An exception of ``aw`` is raised as usual."""
    task = asyncio.ensure_future(aw)
    try:
        left = await settle({task}, timeout_s)
    except asyncio.CancelledError:  # the caller was cancelled (Ctrl-C): so is the work it waited for
        task.cancel()
        raise
    if left or task.cancelled():
        return False, None
    return True, task.result()
