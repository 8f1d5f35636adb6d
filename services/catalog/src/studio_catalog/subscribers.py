"""Transcode and media events → the episode's state; media's verified uploads.

Each handler is applied once per event (the consumer's inbox) and only when
the event is newer than the last one applied to that episode, so a late
``progress`` can never turn a ``ready`` episode back into ``processing``.

``playable`` is media's alone (ADR 6): the transcoder says how far the job
is, media says whether it serves the episode, in whatever order the two
arrive. Once catalog says ``playable: true``, the playback route answers.

Verified uploads go into catalog's copy of them (``sources``), which an
episode's source is checked against.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from studio_catalog.repository import EpisodeRepository
from studio_catalog.service import markers_changed
from studio_catalog.sources import record_upload
from studio_common.consumer import EventConsumers
from studio_common.events import (
    Envelope,
    EpisodeMarkersDetectedV1,
    EpisodePlayabilityChangedV1,
    TranscodeCompletedV1,
    TranscodeFailedV1,
    TranscodePlayableV1,
    TranscodeProgressV1,
    TranscodeStartedV1,
    UploadVerifiedV1,
)

LOG_LIMIT = 20_000
# The reason catalog gives for a ready episode media found gone from storage.
MEDIA_GONE_LOG = (
    "The episode's video is no longer in storage (media found its master playlist "
    "gone). Upload the source again to transcode it anew."
)


async def _apply(
    session: AsyncSession,
    envelope: Envelope,
    event: TranscodeStartedV1
    | TranscodeProgressV1
    | TranscodePlayableV1
    | TranscodeCompletedV1
    | TranscodeFailedV1,
    state: str,
    **values: Any,
) -> None:
    # Every transcode event names its job and the state it puts the episode in.
    await EpisodeRepository(session).apply_transcode_update(
        event.episode_id,
        envelope.occurred_at,
        {"transcode_state": state, "transcode_job_id": event.job_id, **values},
    )


async def on_started(event: TranscodeStartedV1, envelope: Envelope, session: AsyncSession) -> None:
    await _apply(session, envelope, event, "processing", transcode_progress=0.0)


async def on_progress(
    event: TranscodeProgressV1, envelope: Envelope, session: AsyncSession
) -> None:
    await _apply(session, envelope, event, "processing", transcode_progress=round(event.percent, 2))


async def on_playable(
    event: TranscodePlayableV1, envelope: Envelope, session: AsyncSession
) -> None:
    # Still processing: the growing playlists play before the job completes.
    served = {"hls_master_key": event.hls_master_key, "renditions": event.renditions}
    await _apply(session, envelope, event, "processing", **served)


async def on_completed(
    event: TranscodeCompletedV1, envelope: Envelope, session: AsyncSession
) -> None:
    await _apply(
        session,
        envelope,
        event,
        "ready",
        transcode_progress=100.0,
        hls_master_url=event.hls_master_url,
        hls_master_key=event.hls_master_key,
        duration_sec=event.duration_sec,
        thumbnails=event.thumbnails,
        renditions=event.renditions,
        subtitles=[s.model_dump(mode="json", by_alias=True) for s in event.subtitles],
    )


async def on_failed(event: TranscodeFailedV1, envelope: Envelope, session: AsyncSession) -> None:
    log = event.reason if not event.log_tail else f"{event.reason}\n\n{event.log_tail}"
    await _apply(session, envelope, event, "failed", transcode_log=log[-LOG_LIMIT:])


async def on_playability(
    event: EpisodePlayabilityChangedV1, envelope: Envelope, session: AsyncSession
) -> None:
    episodes = EpisodeRepository(session)
    await episodes.apply_playability(event.episode_id, envelope.occurred_at, event.playable)
    # Catalog never says ready for media that is gone (studio_media.service.presence).
    if event.state == "missing":
        await episodes.apply_media_gone(
            event.episode_id, envelope.occurred_at, True, MEDIA_GONE_LOG
        )
    elif event.state == "ready" and event.playable:
        await episodes.apply_media_gone(
            event.episode_id, envelope.occurred_at, False, MEDIA_GONE_LOG
        )


async def on_markers(
    event: EpisodeMarkersDetectedV1, envelope: Envelope, session: AsyncSession
) -> None:
    markers = [
        {**m.model_dump(mode="json", by_alias=True), "source": "detected"} for m in event.markers
    ]
    if await EpisodeRepository(session).apply_detected_markers(
        event.episode_id, envelope.occurred_at, markers
    ):
        await markers_changed(session, event.episode_id, markers, edited=False)


async def on_upload_verified(
    event: UploadVerifiedV1, envelope: Envelope, session: AsyncSession
) -> None:
    # Media's verified uploads, which an episode's source is checked against.
    await record_upload(session, event, envelope.occurred_at)


def register(consumers: EventConsumers) -> None:
    consumers.add(TranscodeStartedV1, on_started)
    consumers.add(TranscodeProgressV1, on_progress)
    consumers.add(TranscodePlayableV1, on_playable)
    consumers.add(TranscodeCompletedV1, on_completed)
    consumers.add(TranscodeFailedV1, on_failed)
    consumers.add(EpisodePlayabilityChangedV1, on_playability)
    consumers.add(EpisodeMarkersDetectedV1, on_markers)
    consumers.add(UploadVerifiedV1, on_upload_verified)
