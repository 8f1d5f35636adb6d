"""The media service: uploads to S3 and signed HLS playback URLs."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from datetime import timedelta

from fastapi import FastAPI
from redis.asyncio import Redis

from studio_common.app import Runtime, create_service_app
from studio_common.tasks import run_in_background
from studio_media.api import playback, uploads
from studio_media.api.edge import HlsEdgeFastPath
from studio_media.cdn import CdnSigner
from studio_media.config import MediaSettings
from studio_media.context import MediaContext
from studio_media.models import messaging
from studio_media.ratelimit import RateLimiter
from studio_media.service.cleanup import cleanup_periodically
from studio_media.service.folders import sweep_periodically
from studio_media.service.presence import check_periodically
from studio_media.storage import MediaStorage
from studio_media.subscribers import registrar

log = logging.getLogger("studio.media")


async def _start(ctx: MediaContext, runtime: Runtime[MediaContext], stack: AsyncExitStack) -> None:
    settings = ctx.settings
    if settings.signing_key_generated:
        log.warning(
            "MEDIA_PLAYBACK_SIGNING_KEY is not set: playback URLs are signed with a key "
            "generated for this process and stop working when it exits or on another replica"
        )
    redis = Redis.from_url(
        settings.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0, health_check_interval=30
    )
    stack.push_async_callback(redis.aclose)
    ctx.attach(
        MediaStorage(settings),
        RateLimiter(redis, settings.rate_limit_prefix),
        CdnSigner.from_settings(settings) if settings.playback_mode == "cdn" else None,
    )
    if settings.upload_cleanup_interval_seconds > 0:
        cleanup = cleanup_periodically(
            runtime.database,
            ctx.storage,
            interval=settings.upload_cleanup_interval_seconds,
            max_age=timedelta(hours=settings.upload_max_age_hours),
        )
        run_in_background(stack, cleanup, "media-upload-cleanup")
    if settings.hls_sweep_interval_seconds > 0:
        sweep = sweep_periodically(
            runtime.database, ctx.storage, interval=settings.hls_sweep_interval_seconds
        )
        run_in_background(stack, sweep, "media-hls-sweep")
    if settings.hls_presence_check_interval_seconds > 0:
        presence = check_periodically(
            runtime.database, ctx.storage, interval=settings.hls_presence_check_interval_seconds
        )
        run_in_background(stack, presence, "media-hls-presence")


def create_app(settings: MediaSettings | None = None) -> FastAPI:
    settings = settings or MediaSettings()
    ctx = MediaContext(settings)

    async def context(runtime: Runtime[MediaContext], stack: AsyncExitStack) -> MediaContext:
        await _start(ctx, runtime, stack)
        return ctx

    app = create_service_app(
        settings,
        title="Studio.Anime media",
        description="Uploads to S3 (presigned, resumable, verified) and signed HLS playback.",
        routers=[uploads.router, playback.router],
        tables=messaging,
        register_consumers=registrar(ctx),
        context=context,
        # Players fetch a file every few seconds and the gateway logs each one;
        # a line here too would be most of media's log. Failures are logged.
        quiet_routes=()
        if settings.log_hls_requests
        else {("GET", playback.HLS_FILE), ("HEAD", playback.HLS_FILE)},
    )
    if settings.hls_edge_fast_path:
        HlsEdgeFastPath.install(app)
    return app
