from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import pytest

from studio_common.tasks import run_in_background, stop_task


async def test_a_task_that_swallows_one_cancellation_is_stopped() -> None:
    swallowed: list[bool] = []

    async def loop() -> None:
        # What asyncio.wait_for does on 3.11 when the cancellation meets a result.
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(True)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, within=5), timeout=10)
    assert swallowed == [True]
    assert task.cancelled()


async def test_a_task_that_never_stops_is_given_up_on(caplog: pytest.LogCaptureFixture) -> None:
    released = False

    async def stubborn() -> None:
        while not released:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="studio.tasks"):
        await asyncio.wait_for(stop_task(task, within=0.3), timeout=10)
    assert not task.done()
    assert [r.message for r in caplog.records] == ["a background task did not stop"]
    released = True
    task.cancel()
    await task


async def test_a_failed_task_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="studio.tasks"):
        await stop_task(task)
    assert [r.message for r in caplog.records] == ["a background task had failed"]


async def test_a_background_task_ends_with_its_stack() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async with AsyncExitStack() as stack:
        task = run_in_background(stack, forever(), "forever")
        await asyncio.wait_for(started.wait(), timeout=5)
        assert task.get_name() == "forever"
        assert not task.done()
    assert task.cancelled()
