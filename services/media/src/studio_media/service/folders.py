"""The life of an episode's HLS folders (ADR 6).

Each transcode attempt writes ``hls/{episodeId}/{version}/``; media registers
every folder it hears of, serves only registered ones, and deletes only
registered ones. A folder that stops being served is retired: deleted by the
sweep once a grace period has passed (players holding a URL of it finish),
unless it is served again. A ready public episode also gets an unsigned copy
under ``public/hls/``; making it private deletes that copy at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.db import Database
from studio_media.config import MediaSettings
from studio_media.hls import public_copy
from studio_media.models import EpisodeAsset, HlsFolder
from studio_media.repository import AssetRepository, FolderRepository
from studio_media.storage import MediaStorage

log = logging.getLogger("studio.media.folders")


@dataclass
class Folders:
    session: AsyncSession
    storage: MediaStorage
    settings: MediaSettings

    @property
    def repo(self) -> FolderRepository:
        return FolderRepository(self.session)

    def grace_end(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.settings.hls_retire_grace)

    async def serve_only(self, asset: EpisodeAsset, *spare: str) -> None:
        """The asset's served folders are kept; every other one but ``spare``
        (an attempt still writing) is retired."""
        served = {p for p in (asset.hls_prefix, asset.public_prefix) if p}
        for prefix in served:
            await self.repo.keep(prefix)
        await self.repo.retire_others(asset.episode_id, served | set(spare), self.grace_end())

    async def publish(self, asset: EpisodeAsset) -> None:
        """An unsigned copy of a ready public episode's current folder."""
        source = asset.hls_prefix
        if not (asset.public and asset.state == "ready" and source and asset.hls_master_key):
            return
        target = public_copy(source)
        if asset.public_prefix == target:
            return
        # Inside the handler's transaction: a failed copy rolls back and is retried.
        copied = await self.storage.copy_prefix(source, target)
        await self.repo.register(asset.episode_id, target, public=True)
        await self.repo.keep(target)
        master = public_copy(asset.hls_master_key)
        await AssetRepository(self.session).set_public_master(asset.episode_id, master)
        asset.public_master_key = master
        await self.serve_only(asset)
        log.info("public copy made", extra={"prefix": target, "objects": copied})

    async def unpublish(self, asset: EpisodeAsset) -> None:
        """Private again: the unsigned copies go now, not after a grace period."""
        await AssetRepository(self.session).set_public_master(asset.episode_id, None)
        asset.public_master_key = None
        await self.delete_now(await self.repo.live([asset.episode_id], public=True))

    async def delete_episodes(self, episode_ids: list[uuid.UUID]) -> None:
        await self.delete_now(await self.repo.live(episode_ids))

    async def delete_now(self, folders: list[HlsFolder]) -> None:
        for folder in folders:
            deleted = await self.storage.delete_prefix(folder.prefix)
            log.info("HLS folder deleted", extra={"prefix": folder.prefix, "objects": deleted})
        await self.repo.mark_deleted(f.prefix for f in folders)


async def sweep_folders(
    database: Database, storage: MediaStorage, *, now: datetime | None = None
) -> int:
    """Deletes the retired folders whose grace period is over; returns how many."""
    deleted = 0
    async with database.transaction() as session:
        folders = FolderRepository(session)
        assets = AssetRepository(session)
        for folder in await folders.due(now or datetime.now(UTC)):
            asset = await assets.get(folder.episode_id)
            if asset is not None and asset.state != "deleted" and asset.serves(folder.prefix):
                await folders.keep(folder.prefix)
                continue
            await storage.delete_prefix(folder.prefix)
            await folders.mark_deleted([folder.prefix])
            deleted += 1
    if deleted:
        log.info("retired HLS folders deleted", extra={"folders": deleted})
    return deleted


async def sweep_periodically(database: Database, storage: MediaStorage, *, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_folders(database, storage)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HLS folder sweep failed; retrying next interval")
