"""Ready episodes whose HLS is gone from storage stop being announced as playable.

Objects can vanish behind media's back: a local stand-in's store wiped, a
bucket restored from an older backup, a lifecycle rule. Media would go on
answering playback URLs whose every request is a 404, and catalog would go on
listing the episode as ``ready``. So media checks, at start and every
``MEDIA_HLS_PRESENCE_CHECK_INTERVAL_SECONDS``, that the master playlist of each
ready episode's current folder is still there. One that is gone turns the
asset ``missing`` and is announced (``media.episode.playability_changed``,
``playable: false``, ``state: missing``) in the same transaction (outbox);
catalog then stops saying ``ready``. Should the master come back (a store
restored late), the asset is ``ready`` again and announced so.

Only a definite "no such key" counts: a storage error, a missing bucket or an
unreachable endpoint says nothing about the objects and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import func, select, update

from studio_common.db import Database
from studio_common.events import EpisodePlayabilityChangedV1
from studio_common.outbox import enqueue
from studio_media.models import EpisodeAsset, messaging
from studio_media.storage import MediaStorage

log = logging.getLogger("studio.media.presence")

BATCH = 200
# HEAD requests in flight at once: enough to check thousands of episodes in
# seconds, few enough to leave the connection pool to playback.
CONCURRENCY = 8
# The first check waits this long after start (never longer than the interval):
# a local stand-in restoring its saved objects answers 404 until it is done.
START_DELAY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class PresenceReport:
    checked: int = 0
    missing: int = 0
    restored: int = 0


async def _exists(storage: MediaStorage, key: str, gate: asyncio.Semaphore) -> bool | None:
    """True/False when storage says so; None when it could not tell."""
    async with gate:
        try:
            return await storage.head(key) is not None
        except (ClientError, BotoCoreError, OSError):
            return None


async def _set_state(
    database: Database, episode_id: uuid.UUID, master_key: str, was: str, state: str
) -> bool:
    """Moves the asset from ``was`` to ``state`` if it still serves ``master_key``
    (an event may have moved it on meanwhile), announcing the change."""
    async with database.transaction() as session:
        changed = await session.execute(
            update(EpisodeAsset)
            .where(
                EpisodeAsset.episode_id == episode_id,
                EpisodeAsset.state == was,
                EpisodeAsset.hls_master_key == master_key,
            )
            .values(state=state, updated_at=func.now())
            .returning(EpisodeAsset.episode_id)
        )
        if changed.first() is None:
            return False
        await enqueue(
            session,
            messaging,
            EpisodePlayabilityChangedV1(
                episode_id=episode_id, playable=state == "ready", state=state
            ),
        )
    return True


async def check_presence(database: Database, storage: MediaStorage) -> PresenceReport:
    """One pass over every ready (and every missing) episode's current master."""
    if not await storage.bucket_exists():
        # Nothing can be said of the objects of a bucket that is not there (or
        # not reachable): a wrong setting or an outage, not lost media.
        log.warning("HLS presence check skipped: the bucket does not answer")
        return PresenceReport()
    gate = asyncio.Semaphore(CONCURRENCY)
    checked = missing = restored = 0
    after: uuid.UUID | None = None
    while True:
        async with database.transaction() as session:
            stmt = (
                select(EpisodeAsset.episode_id, EpisodeAsset.state, EpisodeAsset.hls_master_key)
                .where(
                    EpisodeAsset.state.in_(("ready", "missing")),
                    EpisodeAsset.hls_master_key.is_not(None),
                )
                .order_by(EpisodeAsset.episode_id)
                .limit(BATCH)
            )
            if after is not None:
                stmt = stmt.where(EpisodeAsset.episode_id > after)
            rows = (await session.execute(stmt)).all()
        if not rows:
            break
        after = rows[-1].episode_id
        found = await asyncio.gather(*(_exists(storage, r.hls_master_key, gate) for r in rows))
        for row, exists in zip(rows, found, strict=True):
            checked += 1
            if exists is False and row.state == "ready":
                change, words = "missing", "gone from storage; no longer playable"
            elif exists is True and row.state == "missing":
                change, words = "ready", "back in storage; playable again"
            else:
                continue
            key = row.hls_master_key
            if await _set_state(database, row.episode_id, key, row.state, change):
                if change == "missing":
                    missing += 1
                else:
                    restored += 1
                log.warning(
                    f"an episode's HLS is {words}",
                    extra={"episode_id": str(row.episode_id), "key": key},
                )
    return PresenceReport(checked=checked, missing=missing, restored=restored)


async def check_periodically(database: Database, storage: MediaStorage, *, interval: float) -> None:
    await asyncio.sleep(min(START_DELAY_SECONDS, interval))
    failing = False
    while True:
        try:
            await check_presence(database, storage)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # One line per run of failures (the database away), not a traceback per round.
            if not failing:
                log.warning("HLS presence check failed; retrying next interval: %s", exc)
            failing = True
        else:
            failing = False
        await asyncio.sleep(interval)
