"""Stopping background tasks for good."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any

log = logging.getLogger("studio.tasks")


async def stop_task(task: asyncio.Task[Any], *, within: float = 5.0) -> None:
    """Cancel ``task`` and wait until it has ended, for at most ``within`` seconds.

    One ``cancel()`` is not always enough: Python 3.11's ``asyncio.wait_for``
    swallows a cancellation that arrives just as the awaited future completes
    (fixed in 3.12), so a loop built around it can survive the cancellation and
    run on, and a shutdown that awaits it waits forever. The cancellation is
    repeated until the task ends.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("a background task did not stop", extra={"task": task.get_name()})
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.1, remaining))
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("a background task had failed", exc_info=error, extra={"task": task.get_name()})


def run_in_background(
    stack: AsyncExitStack, work: Coroutine[Any, Any, Any], name: str
) -> asyncio.Task[Any]:
    """Start ``work`` as a task that ``stack`` stops (with :func:`stop_task`) on exit."""
    task = asyncio.create_task(work, name=name)
    stack.push_async_callback(stop_task, task)
    return task
