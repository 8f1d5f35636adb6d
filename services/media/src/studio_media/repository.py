"""All SQL of the media service lives here; nothing in this module commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from studio_media.models import EpisodeAsset, HlsFolder, Upload

_ASSETS = cast(Table, EpisodeAsset.__table__)
_FOLDERS = cast(Table, HlsFolder.__table__)
# Older than any event: a row made by a visibility event yields to every transcode event.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class UploadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, upload: Upload) -> Upload:
        self.session.add(upload)
        await self.session.flush()
        return upload

    async def get(self, upload_id: uuid.UUID, *, for_update: bool = False) -> Upload | None:
        stmt = select(Upload).where(Upload.id == upload_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).first()

    async def set_status(self, upload: Upload, status: str, **values: Any) -> Upload:
        upload.status = status
        for name, value in values.items():
            setattr(upload, name, value)
        await self.session.flush()
        return upload

    async def stale(self, older_than: datetime, limit: int = 500) -> list[Upload]:
        """Open uploads created before ``older_than``, locked; replicas skip each other's."""
        stmt = (
            select(Upload)
            .where(Upload.status.in_(("pending", "uploading")), Upload.created_at < older_than)
            .order_by(Upload.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.scalars(stmt)).all())

    async def open_s3_upload_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of these S3 multipart upload ids belong to an upload still open here."""
        wanted = list(ids)
        if not wanted:
            return set()
        rows = await self.session.scalars(
            select(Upload.s3_upload_id).where(
                Upload.s3_upload_id.in_(wanted), Upload.status == "uploading"
            )
        )
        return {r for r in rows if r is not None}


class AssetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, episode_id: uuid.UUID, *, for_update: bool = False) -> EpisodeAsset | None:
        return await self.session.get(EpisodeAsset, episode_id, with_for_update=for_update)

    async def serving(self, episode_id: uuid.UUID, prefix: str) -> EpisodeAsset | None:
        """The episode's asset when ``prefix`` is one of its registered, undeleted
        folders: what a playback URL that names a version may read."""
        stmt = (
            select(EpisodeAsset)
            .join(HlsFolder, HlsFolder.episode_id == EpisodeAsset.episode_id)
            .where(
                EpisodeAsset.episode_id == episode_id,
                EpisodeAsset.state != "deleted",
                HlsFolder.prefix == prefix,
                HlsFolder.public.is_(False),
                HlsFolder.deleted_at.is_(None),
            )
        )
        return (await self.session.scalars(stmt)).first()

    async def set_public_master(self, episode_id: uuid.UUID, key: str | None) -> None:
        await self.session.execute(
            update(EpisodeAsset)
            .where(EpisodeAsset.episode_id == episode_id)
            .values(public_master_key=key, updated_at=func.now())
        )

    async def apply(
        self,
        episode_id: uuid.UUID,
        occurred_at: datetime,
        values: dict[str, Any],
        *,
        public_default: bool = False,
    ) -> bool:
        """Upsert the episode's asset from an event unless a newer event was applied."""
        table = _ASSETS
        result = await self.session.execute(
            insert(table)
            .values(episode_id=episode_id, event_at=occurred_at, public=public_default, **values)
            .on_conflict_do_update(
                index_elements=[table.c.episode_id],
                set_={**values, "event_at": occurred_at, "updated_at": func.now()},
                where=table.c.event_at < occurred_at,
            )
            .returning(table.c.episode_id)
        )
        return result.first() is not None

    async def apply_visibility(
        self, episode_id: uuid.UUID, title_id: uuid.UUID, occurred_at: datetime, public: bool
    ) -> bool:
        """Record catalog's visibility unless a newer one was recorded.

        An episode media has not heard of yet gets a pending row whose state any
        transcode event will still overwrite."""
        table = _ASSETS
        result = await self.session.execute(
            insert(table)
            .values(
                episode_id=episode_id,
                title_id=title_id,
                state="pending",
                public=public,
                public_event_at=occurred_at,
                event_at=NEVER,
            )
            .on_conflict_do_update(
                index_elements=[table.c.episode_id],
                set_={"public": public, "public_event_at": occurred_at, "updated_at": func.now()},
                where=or_(table.c.public_event_at.is_(None), table.c.public_event_at < occurred_at),
            )
            .returning(table.c.episode_id)
        )
        return result.first() is not None

    async def mark_deleted(
        self,
        occurred_at: datetime,
        *,
        episode_ids: Iterable[uuid.UUID] = (),
        title_id: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        """Tombstone the episodes' assets; returns the episodes that were not deleted yet."""
        ids = list(episode_ids)
        conds: list[ColumnElement[bool]] = []
        if ids:
            conds.append(EpisodeAsset.episode_id.in_(ids))
        if title_id is not None:
            conds.append(EpisodeAsset.title_id == title_id)
        if not conds:
            return []
        older = (
            await self.session.scalars(
                select(EpisodeAsset)
                .where(or_(*conds), EpisodeAsset.event_at < occurred_at)
                .with_for_update()
            )
        ).all()
        gone = [a.episode_id for a in older if a.state != "deleted"]
        if older:
            await self.session.execute(
                update(EpisodeAsset)
                .where(EpisodeAsset.episode_id.in_([a.episode_id for a in older]))
                .values(
                    state="deleted",
                    event_at=occurred_at,
                    public_master_key=None,
                    updated_at=func.now(),
                )
            )
        # Episodes media has not heard of yet get a tombstone too, so a late
        # "completed" cannot bring a deleted episode back.
        for episode_id in ids:
            await self.session.execute(
                insert(_ASSETS)
                .values(
                    episode_id=episode_id,
                    title_id=title_id,
                    state="deleted",
                    event_at=occurred_at,
                )
                .on_conflict_do_nothing()
            )
        return gone


class FolderRepository:
    """The registry of HLS folders: what may be served, and what may be deleted."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def register(self, episode_id: uuid.UUID, prefix: str, *, public: bool = False) -> None:
        """Known from now on; a folder registered again (a redelivery) is left as it is."""
        await self.session.execute(
            insert(_FOLDERS)
            .values(prefix=prefix, episode_id=episode_id, public=public)
            .on_conflict_do_nothing()
        )

    async def keep(self, prefix: str) -> None:
        """Served again: no longer due for deletion."""
        await self.session.execute(
            update(HlsFolder)
            .where(HlsFolder.prefix == prefix, HlsFolder.deleted_at.is_(None))
            .values(retire_after=None)
        )

    async def retire_others(
        self, episode_id: uuid.UUID, keep: Iterable[str], after: datetime
    ) -> None:
        """Every other live folder of the episode becomes due at ``after``."""
        await self.session.execute(
            update(HlsFolder)
            .where(
                HlsFolder.episode_id == episode_id,
                HlsFolder.prefix.not_in(list(keep)),
                HlsFolder.deleted_at.is_(None),
                HlsFolder.retire_after.is_(None),
            )
            .values(retire_after=after)
        )

    async def retire(self, prefixes: Iterable[str], after: datetime) -> None:
        wanted = list(prefixes)
        if wanted:
            await self.session.execute(
                update(HlsFolder)
                .where(
                    HlsFolder.prefix.in_(wanted),
                    HlsFolder.deleted_at.is_(None),
                    or_(HlsFolder.retire_after.is_(None), HlsFolder.retire_after > after),
                )
                .values(retire_after=after)
            )

    async def live(
        self, episode_ids: Iterable[uuid.UUID], *, public: bool | None = None
    ) -> list[HlsFolder]:
        ids = list(episode_ids)
        if not ids:
            return []
        stmt = select(HlsFolder).where(
            HlsFolder.episode_id.in_(ids), HlsFolder.deleted_at.is_(None)
        )
        if public is not None:
            stmt = stmt.where(HlsFolder.public.is_(public))
        return list((await self.session.scalars(stmt.with_for_update())).all())

    async def due(self, now: datetime, limit: int = 100) -> list[HlsFolder]:
        """Folders due for deletion, locked; replicas sweeping at once skip each other's."""
        stmt = (
            select(HlsFolder)
            .where(HlsFolder.deleted_at.is_(None), HlsFolder.retire_after <= now)
            .order_by(HlsFolder.retire_after)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.scalars(stmt)).all())

    async def mark_deleted(self, prefixes: Iterable[str]) -> None:
        wanted = list(prefixes)
        if wanted:
            await self.session.execute(
                update(HlsFolder)
                .where(HlsFolder.prefix.in_(wanted))
                .values(deleted_at=func.now(), retire_after=None)
            )
