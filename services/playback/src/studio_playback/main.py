"""The playback service: favorites, watchlist, resume positions, continue-watching."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import FastAPI

from studio_common.app import Runtime, create_service_app
from studio_playback import subscribers
from studio_playback.api import playback
from studio_playback.api.fastpath import PositionWriteFastPath
from studio_playback.config import PlaybackSettings
from studio_playback.context import PlaybackContext
from studio_playback.models import messaging
from studio_playback.positions import PositionWriter, create_pool
from studio_playback.tokens import CachedVerifier


def create_app(settings: PlaybackSettings | None = None) -> FastAPI:
    settings = settings or PlaybackSettings()

    async def context(runtime: Runtime[PlaybackContext], stack: AsyncExitStack) -> PlaybackContext:
        pool = await create_pool(settings.database_url, settings.positions_pool_size)
        stack.push_async_callback(pool.close)
        if settings.token_cache_size > 0 and settings.token_cache_seconds > 0:
            runtime.verifier = CachedVerifier(
                runtime.require_verifier(),
                max_entries=settings.token_cache_size,
                ttl_seconds=settings.token_cache_seconds,
            )
        return PlaybackContext(
            settings=settings,
            positions_pool=pool,
            positions=PositionWriter(
                pool,
                watched_fraction=settings.watched_fraction,
                batch_size=settings.positions_batch_size,
                concurrent_batches=settings.positions_concurrent_batches,
                max_pending=settings.positions_max_pending,
            ),
        )

    app = create_service_app(
        settings,
        title="Studio.Anime playback",
        description="Favorites, watchlist, resume positions and continue-watching.",
        routers=[playback.router],
        tables=messaging,
        # Playback only consumes events; it enqueues none, so it runs no relay.
        produces_events=False,
        register_consumers=subscribers.register,
        context=context,
        # Every player reports every few seconds: a line per successful write
        # would be most of the log and a quarter of the CPU. Failures are logged.
        quiet_routes=() if settings.log_position_writes else {("POST", "/api/playback")},
    )
    if settings.positions_fast_path:
        PositionWriteFastPath.install(app)
    return app
