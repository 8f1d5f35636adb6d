"""The transcoder API process: the jobs admin API and the outbox relay.

The worker (``python -m studio_transcoder worker``) runs the jobs and writes
its events to the same outbox; this process's relay publishes them.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from fastapi import FastAPI

from studio_common.app import Runtime, create_service_app
from studio_common.tasks import run_in_background
from studio_transcoder import subscribers
from studio_transcoder.api import jobs
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.metrics import JobGauge
from studio_transcoder.models import messaging
from studio_transcoder.repository import JobRepository

log = logging.getLogger("studio.transcoder")


def create_app(settings: TranscoderSettings | None = None) -> FastAPI:
    settings = settings or TranscoderSettings()

    def context(runtime: Runtime[None], stack: AsyncExitStack) -> None:
        gauge = JobGauge(runtime.registry)

        async def refresh() -> None:
            while True:
                try:
                    async with runtime.database.transaction() as session:
                        gauge.update(await JobRepository(session).count_by_status())
                except Exception:
                    log.warning("could not count jobs for the metrics", exc_info=True)
                await asyncio.sleep(settings.jobs_gauge_refresh_seconds)

        run_in_background(stack, refresh(), "transcoder-jobs-gauge")

    return create_service_app(
        settings,
        title="Studio.Anime transcoder",
        description="FFmpeg HLS ladder jobs: list, inspect and retry them.",
        routers=[jobs.router],
        tables=messaging,
        register_consumers=subscribers.register,
        context=context,
    )
