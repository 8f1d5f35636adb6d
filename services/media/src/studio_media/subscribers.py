"""Catalog and transcoder events → media's record of each episode's HLS.

Each handler runs once per event (the consumer's inbox) and applies only when
the event is newer than the last one applied to that episode (ADR 1), so a
late ``playable`` cannot demote a ``ready`` episode, and a late ``completed``
cannot bring back a deleted one (deletions leave a tombstone).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.app import ConsumerRegistration
from studio_common.consumer import EventConsumers
from studio_common.events import (
    Envelope,
    EpisodeDeletedV1,
    EpisodeUploadedV1,
    EpisodeVisibilityChangedV1,
    TitleDeletedV1,
    TranscodeCompletedV1,
    TranscodeFailedV1,
    TranscodePlayableV1,
)
from studio_media.context import MediaContext
from studio_media.hls import is_master_key
from studio_media.repository import AssetRepository

log = logging.getLogger("studio.media.events")


class AssetHandlers:
    def __init__(self, ctx: MediaContext) -> None:
        self.ctx = ctx

    async def _apply(
        self,
        session: AsyncSession,
        envelope: Envelope,
        episode_id: uuid.UUID,
        values: dict[str, Any],
    ) -> None:
        await AssetRepository(session).apply(
            episode_id,
            envelope.occurred_at,
            values,
            public_default=self.ctx.settings.assets_public_by_default,
        )

    def _master_key(self, key: str, envelope: Envelope) -> bool:
        if is_master_key(key):
            return True
        # Never serve from outside hls/: the event is logged and skipped, not retried.
        log.error(
            "ignoring an HLS location outside hls/",
            extra={"event_id": str(envelope.id), "key": key[:200]},
        )
        return False

    async def on_uploaded(
        self, event: EpisodeUploadedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        await self._apply(
            session, envelope, event.episode_id, {"state": "pending", "title_id": event.title_id}
        )

    async def on_playable(
        self, event: TranscodePlayableV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        if self._master_key(event.hls_master_key, envelope):
            await self._apply(
                session,
                envelope,
                event.episode_id,
                {
                    "state": "playable",
                    "hls_master_key": event.hls_master_key,
                    "renditions": event.renditions,
                },
            )

    async def on_completed(
        self, event: TranscodeCompletedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        if self._master_key(event.hls_master_key, envelope):
            await self._apply(
                session,
                envelope,
                event.episode_id,
                {
                    "state": "ready",
                    "hls_master_key": event.hls_master_key,
                    "renditions": event.renditions,
                },
            )

    async def on_failed(
        self, event: TranscodeFailedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        await self._apply(session, envelope, event.episode_id, {"state": "failed"})

    async def on_visibility_changed(
        self, event: EpisodeVisibilityChangedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        await AssetRepository(session).apply_visibility(
            event.episode_id, event.title_id, envelope.occurred_at, event.public
        )

    async def _drop(self, prefixes: list[str]) -> None:
        # Runs inside the handler's transaction: if storage fails, the tombstone
        # rolls back too and the event is retried.
        for prefix in prefixes:
            deleted = await self.ctx.storage.delete_prefix(prefix)
            log.info("dropped HLS files", extra={"prefix": prefix, "objects": deleted})

    async def on_episode_deleted(
        self, event: EpisodeDeletedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        prefixes = await AssetRepository(session).mark_deleted(
            envelope.occurred_at, episode_ids=[event.episode_id]
        )
        await self._drop(prefixes)

    async def on_title_deleted(
        self, event: TitleDeletedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        prefixes = await AssetRepository(session).mark_deleted(
            envelope.occurred_at, episode_ids=event.episode_ids, title_id=event.title_id
        )
        await self._drop(prefixes)


def registrar(ctx: MediaContext) -> ConsumerRegistration:
    handlers = AssetHandlers(ctx)

    def register(consumers: EventConsumers) -> None:
        consumers.add(EpisodeUploadedV1, handlers.on_uploaded)
        consumers.add(TranscodePlayableV1, handlers.on_playable)
        consumers.add(TranscodeCompletedV1, handlers.on_completed)
        consumers.add(TranscodeFailedV1, handlers.on_failed)
        consumers.add(EpisodeDeletedV1, handlers.on_episode_deleted)
        consumers.add(EpisodeVisibilityChangedV1, handlers.on_visibility_changed)
        consumers.add(TitleDeletedV1, handlers.on_title_deleted)

    return register
