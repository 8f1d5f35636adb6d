"""Catalog and transcoder events → media's record of each episode's HLS.

Each handler runs once per event (the consumer's inbox) and applies only when
the event is newer than the last one applied to that episode (ADR 1), so a
late ``playable`` cannot demote a ``ready`` episode, and a late ``completed``
cannot bring back a deleted one (deletions leave a tombstone).

Media owns "playable": whenever the state it serves changes, it announces
``media.episode.playability_changed`` in the same transaction (outbox), so a
consumer that reads ``playable: true`` from it can rely on the playback route.
Folders follow ADR 6 (:mod:`studio_media.service.folders`).

Media learns of an episode from catalog (``episode.uploaded``, visibility,
deletion tombstones). A transcode event for an episode it never heard of is
refused (:class:`UnknownEntity`: retried, then dead-lettered), so no event,
forged or misrouted, creates a row of its own.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.app import ConsumerRegistration
from studio_common.consumer import EventConsumers, UnknownEntity
from studio_common.events import (
    Envelope,
    EpisodeDeletedV1,
    EpisodePlayabilityChangedV1,
    EpisodeUploadedV1,
    EpisodeVisibilityChangedV1,
    TitleDeletedV1,
    TranscodeCompletedV1,
    TranscodeFailedV1,
    TranscodePlayableV1,
    TranscodeStartedV1,
)
from studio_common.outbox import enqueue
from studio_media.context import MediaContext
from studio_media.hls import master_folder, version_folder
from studio_media.models import EpisodeAsset, messaging
from studio_media.repository import AssetRepository, FolderRepository
from studio_media.service.folders import Folders

log = logging.getLogger("studio.media.events")


class AssetHandlers:
    def __init__(self, ctx: MediaContext) -> None:
        self.ctx = ctx

    def _folders(self, session: AsyncSession) -> Folders:
        return Folders(session, self.ctx.storage, self.ctx.settings)

    async def _apply(
        self,
        session: AsyncSession,
        envelope: Envelope,
        episode_id: uuid.UUID,
        values: dict[str, Any],
    ) -> EpisodeAsset | None:
        """The asset after the change, or None when the event was older than the last applied."""
        assets = AssetRepository(session)
        applied = await assets.apply(
            episode_id,
            envelope.occurred_at,
            values,
            public_default=self.ctx.settings.assets_public_by_default,
        )
        if not applied:
            return None
        asset = await assets.get(episode_id, for_update=True)
        assert asset is not None
        await session.refresh(asset)
        await enqueue(
            session,
            messaging,
            EpisodePlayabilityChangedV1(
                episode_id=episode_id, playable=asset.playable, state=asset.state
            ),
        )
        return asset

    async def _known(self, session: AsyncSession, episode_id: uuid.UUID) -> EpisodeAsset:
        """The episode's row (a tombstone counts); refuses one catalog never announced."""
        asset = await AssetRepository(session).get(episode_id)
        if asset is None:
            raise UnknownEntity(f"episode {episode_id} is unknown to media")
        return asset

    def _folder_of(self, key: str, episode_id: uuid.UUID, envelope: Envelope) -> str | None:
        folder = master_folder(key, episode_id)
        if folder is None:
            # Only hls/{episodeId}/{version}/ of this very episode is ever served:
            # the event is logged and skipped, not retried.
            log.error(
                "ignoring an HLS location outside the episode's folders",
                extra={"event_id": str(envelope.id), "key": key[:200]},
            )
        return folder

    async def on_uploaded(
        self, event: EpisodeUploadedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        await self._apply(
            session, envelope, event.episode_id, {"state": "pending", "title_id": event.title_id}
        )

    async def on_started(
        self, event: TranscodeStartedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        # Registered before anything is written there, so even a crashed
        # attempt's folder is known, and retired once it is not served.
        folder = version_folder(event.hls_prefix or "", event.episode_id)
        if folder is None:
            return
        await self._known(session, event.episode_id)
        await FolderRepository(session).register(event.episode_id, folder)
        asset = await AssetRepository(session).get(event.episode_id, for_update=True)
        if asset is not None and asset.state != "deleted":
            await self._folders(session).serve_only(asset, folder)

    async def _serve(
        self,
        session: AsyncSession,
        envelope: Envelope,
        event: TranscodePlayableV1 | TranscodeCompletedV1,
        state: str,
    ) -> None:
        episode_id, master_key = event.episode_id, event.hls_master_key
        folder = self._folder_of(master_key, episode_id, envelope)
        if folder is None:
            return
        await self._known(session, episode_id)
        await FolderRepository(session).register(episode_id, folder)
        asset = await self._apply(
            session,
            envelope,
            episode_id,
            {"state": state, "renditions": event.renditions, "hls_master_key": master_key},
        )
        folders = self._folders(session)
        if asset is None:
            # A late event: its folder is registered, and retired unless served.
            asset = await AssetRepository(session).get(episode_id, for_update=True)
            if asset is None or asset.state == "deleted":
                await FolderRepository(session).retire([folder], datetime.now(UTC))
            else:
                await folders.serve_only(asset)
            return
        await folders.serve_only(asset)
        await folders.publish(asset)

    async def on_playable(
        self, event: TranscodePlayableV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        await self._serve(session, envelope, event, "playable")

    async def on_completed(
        self, event: TranscodeCompletedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        await self._serve(session, envelope, event, "ready")

    async def on_failed(
        self, event: TranscodeFailedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        await self._known(session, event.episode_id)
        await self._apply(session, envelope, event.episode_id, {"state": "failed"})
        folder = version_folder(event.hls_prefix or "", event.episode_id)
        if folder is not None:
            # Registered here too: event types are consumed apart, so the failure
            # may be seen before the attempt's start, which then leaves it retired.
            folders = FolderRepository(session)
            await folders.register(event.episode_id, folder)
            await folders.retire([folder], self._folders(session).grace_end())

    async def on_visibility_changed(
        self, event: EpisodeVisibilityChangedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        assets = AssetRepository(session)
        if not await assets.apply_visibility(
            event.episode_id, event.title_id, envelope.occurred_at, event.public
        ):
            return
        asset = await assets.get(event.episode_id, for_update=True)
        assert asset is not None
        await session.refresh(asset)
        folders = self._folders(session)
        if asset.public:
            await folders.publish(asset)
        else:
            await folders.unpublish(asset)

    async def on_episode_deleted(
        self, event: EpisodeDeletedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        # Inside the handler's transaction: if storage fails, the tombstone
        # rolls back too and the event is retried.
        await AssetRepository(session).mark_deleted(
            envelope.occurred_at, episode_ids=[event.episode_id]
        )
        await self._folders(session).delete_episodes([event.episode_id])

    async def on_title_deleted(
        self, event: TitleDeletedV1, envelope: Envelope, session: AsyncSession
    ) -> None:
        gone = await AssetRepository(session).mark_deleted(
            envelope.occurred_at, episode_ids=event.episode_ids, title_id=event.title_id
        )
        await self._folders(session).delete_episodes(sorted({*gone, *event.episode_ids}))


def registrar(ctx: MediaContext) -> ConsumerRegistration:
    handlers = AssetHandlers(ctx)

    def register(consumers: EventConsumers) -> None:
        consumers.add(EpisodeUploadedV1, handlers.on_uploaded)
        consumers.add(TranscodeStartedV1, handlers.on_started)
        consumers.add(TranscodePlayableV1, handlers.on_playable)
        consumers.add(TranscodeCompletedV1, handlers.on_completed)
        consumers.add(TranscodeFailedV1, handlers.on_failed)
        consumers.add(EpisodeDeletedV1, handlers.on_episode_deleted)
        consumers.add(EpisodeVisibilityChangedV1, handlers.on_visibility_changed)
        consumers.add(TitleDeletedV1, handlers.on_title_deleted)

    return register
