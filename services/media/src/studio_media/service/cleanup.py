"""Abandoned uploads: abort multipart uploads nobody finished, expire stale presigns.

Open multipart uploads cost storage until they are aborted. Two sources:
- rows of ``media.uploads`` still open after ``max_age`` (locked with SKIP
  LOCKED, so replicas running the sweep at once split the work);
- multipart uploads S3 holds under media's prefixes that no open row knows
  (the row never committed), once S3 says they were initiated before the cutoff.

Runs from ``python -m studio_media cleanup-uploads`` and periodically inside
the API process (``MEDIA_UPLOAD_CLEANUP_INTERVAL_SECONDS``; 0 switches it off).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from studio_common.db import Database
from studio_media.policy import PREFIXES
from studio_media.repository import UploadRepository
from studio_media.storage import MediaStorage

log = logging.getLogger("studio.media.cleanup")


@dataclass(frozen=True, slots=True)
class CleanupReport:
    aborted: int = 0
    expired: int = 0
    orphans_aborted: int = 0


async def cleanup_uploads(
    database: Database,
    storage: MediaStorage,
    *,
    max_age: timedelta,
    now: datetime | None = None,
) -> CleanupReport:
    cutoff = (now or datetime.now(UTC)) - max_age
    aborted = expired = 0
    reason = f"abandoned: still open after {max_age}"
    async with database.transaction() as session:
        uploads = UploadRepository(session)
        for upload in await uploads.stale(cutoff):
            if upload.kind == "multipart" and upload.s3_upload_id:
                await storage.abort_multipart(upload.key, upload.s3_upload_id)
                await uploads.set_status(upload, "aborted", reason=reason)
                aborted += 1
            else:
                # The presigned URL has long expired; nothing to abort in S3.
                await uploads.set_status(upload, "expired", reason=reason)
                expired += 1

    candidates = [
        u
        for u in await storage.open_multipart_uploads()
        if str(u["Key"]).startswith(PREFIXES) and u["Initiated"] < cutoff
    ]
    orphans = 0
    if candidates:
        async with database.transaction() as session:
            open_ids = await UploadRepository(session).open_s3_upload_ids(
                str(u["UploadId"]) for u in candidates
            )
        for u in candidates:
            if u["UploadId"] not in open_ids:
                await storage.abort_multipart(str(u["Key"]), str(u["UploadId"]))
                orphans += 1
    report = CleanupReport(aborted=aborted, expired=expired, orphans_aborted=orphans)
    if aborted or expired or orphans:
        log.info(
            "abandoned uploads cleaned up",
            extra={"aborted": aborted, "expired": expired, "orphans_aborted": orphans},
        )
    return report


async def cleanup_periodically(
    database: Database, storage: MediaStorage, *, interval: float, max_age: timedelta
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await cleanup_uploads(database, storage, max_age=max_age)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("upload cleanup failed; retrying next interval")
