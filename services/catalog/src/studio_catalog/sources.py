"""Which uploaded objects an episode may reference: media's verified uploads.

Media announces every upload that passed its checks (``media.upload.verified``);
catalog keeps its own copy of them (``catalog.verified_uploads``) and checks an
episode's source against it when the episode is created, so a missing, unchecked,
rejected or someone else's object is refused at once instead of failing in the
transcoder later. The event can trail the client, which creates the episode as
soon as media answered its upload: a source not known yet is waited for, within
a bound.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from studio_catalog.models import VerifiedUpload
from studio_common.auth import Principal, Role
from studio_common.errors import ProblemError
from studio_common.events import UploadVerifiedV1

# Media makes every source key: uploads/<upload id>/<file name>.
SOURCE_KEY = re.compile(
    r"^uploads/(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"/(?P<name>[A-Za-z0-9!_.*'()-]+)$"
)
MAX_SUBTITLES = 20


class SourceKeyInvalid(ProblemError):
    status, slug, title = (
        422,
        "source-key-invalid",
        "The source is not a key media issued for a video",
    )


class SourceNotVerified(ProblemError):
    status, slug = 422, "source-not-verified"
    title = "The source was never uploaded, or media has not verified it"


class SourceNotOwned(ProblemError):
    status, slug, title = 422, "source-not-owned", "The source was uploaded by another editor"


class SubtitleNotAttached(ProblemError):
    status, slug = 422, "subtitle-not-attached"
    title = "The subtitle upload is not a verified subtitle of this source"


# --- the projection -------------------------------------------------------------


async def record_upload(
    session: AsyncSession, event: UploadVerifiedV1, verified_at: datetime
) -> None:
    """The projection's one write (``subscribers.on_upload_verified``)."""
    # A key is one upload's for good; a redelivery changes nothing.
    await session.execute(
        insert(VerifiedUpload)
        .values(
            upload_id=event.upload_id,
            key=event.key,
            kind=event.kind,
            owner=event.owner,
            size=event.size,
            content_type=event.content_type,
            format=event.format,
            filename=event.filename,
            attached_to=event.attached_to,
            verified_at=verified_at,
        )
        .on_conflict_do_nothing()
    )


# --- the check --------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeSource:
    key: str
    upload_id: uuid.UUID
    subtitle_keys: list[str]


async def _wait_for(
    session: AsyncSession, wanted: Sequence[str | uuid.UUID], by_key: bool, wait: float
) -> dict[str | uuid.UUID, VerifiedUpload]:
    """The verified uploads among ``wanted``, polling until all are known or ``wait`` ends.

    Each SELECT in a READ COMMITTED transaction sees what the consumer
    committed meanwhile."""
    column = VerifiedUpload.key if by_key else VerifiedUpload.upload_id
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        rows = (await session.scalars(select(VerifiedUpload).where(column.in_(wanted)))).all()
        found: dict[str | uuid.UUID, VerifiedUpload] = {
            (r.key if by_key else r.upload_id): r for r in rows
        }
        left = deadline - time.monotonic()
        if len(found) == len(set(wanted)) or left <= 0:
            return found
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 0.5)


def _may_use(principal: Principal, upload: VerifiedUpload) -> bool:
    return upload.owner == principal.subject or principal.has_role(Role.admin)


async def check_source(
    session: AsyncSession,
    principal: Principal,
    key: str,
    subtitle_upload_ids: Sequence[uuid.UUID],
    *,
    wait: float,
) -> EpisodeSource:
    """The verified source the caller may use, with its verified subtitles; raises a 422 naming why not."""
    if SOURCE_KEY.match(key) is None:
        raise SourceKeyInvalid(
            f"'{key}' is not a source key media issued (uploads/<uploadId>/<file name>); "
            "upload the video with POST /api/admin/presign or /api/admin/uploads (kind 'source')."
        )
    source = (await _wait_for(session, [key], True, wait)).get(key)
    if source is None:
        raise SourceNotVerified(
            f"Media has not verified '{key}': it was never uploaded, its check failed, or it "
            "was not checked yet (POST /api/admin/uploads/verify, or complete the upload)."
        )
    if source.kind != "source":
        raise SourceKeyInvalid(f"'{key}' is a {source.kind} upload, not a video source.")
    if not _may_use(principal, source):
        raise SourceNotOwned("Only the editor who uploaded a source, or an admin, may use it.")
    wanted = list(dict.fromkeys(subtitle_upload_ids))
    named = await _wait_for(session, wanted, False, wait) if wanted else {}
    bad = [
        str(i)
        for i in wanted
        if (s := named.get(i)) is None or s.kind != "subtitle" or s.attached_to != source.upload_id
    ]
    if bad:
        raise SubtitleNotAttached(
            "These uploads are not verified subtitles attached to the source: " + ", ".join(bad),
            extra={"subtitleUploadIds": bad},
        )
    # Every verified subtitle attached to the source by id, the named ones
    # included; media let only the source's editor (or an admin) attach one.
    attached = (
        await session.scalars(
            select(VerifiedUpload)
            .where(
                VerifiedUpload.attached_to == source.upload_id,
                VerifiedUpload.kind == "subtitle",
            )
            .order_by(VerifiedUpload.verified_at, VerifiedUpload.key)
            .limit(MAX_SUBTITLES)
        )
    ).all()
    return EpisodeSource(
        key=source.key,
        upload_id=source.upload_id,
        subtitle_keys=[s.key for s in attached],
    )
