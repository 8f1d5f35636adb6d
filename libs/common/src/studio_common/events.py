"""The event catalog: every event the services exchange, versioned.

An event type is ``<service>.<entity>.<verb>``; it travels on the subject
``<root>.<type>`` (root ``studio`` in production) inside an :class:`Envelope`.
A payload class is registered under ``(type, version)``; a breaking change adds
a new class with ``version = 2`` and producers emit both until consumers move.
Both versions share the subject; a consumer acks and counts a version it does
not handle (:mod:`studio_common.consumer`), so the other one is no dead letter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class EventPayload(CamelModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    event_type: ClassVar[str]
    event_version: ClassVar[int] = 1


_REGISTRY: dict[tuple[str, int], type[EventPayload]] = {}
P = TypeVar("P", bound=type[EventPayload])


def event(event_type: str, version: int = 1) -> Any:
    parts = event_type.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"event type must be <service>.<entity>.<verb>: {event_type!r}")

    def register(cls: P) -> P:
        key = (event_type, version)
        if key in _REGISTRY:
            raise ValueError(f"event {key} registered twice")
        cls.event_type = event_type
        cls.event_version = version
        _REGISTRY[key] = cls
        return cls

    return register


def payload_class(event_type: str, version: int) -> type[EventPayload] | None:
    return _REGISTRY.get((event_type, version))


def registered_events() -> dict[tuple[str, int], type[EventPayload]]:
    return dict(_REGISTRY)


def subject_for(root: str, event_type: str) -> str:
    return f"{root}.{event_type}"


def dead_letter_subject(root: str, consumer: str, event_type: str) -> str:
    return f"{root}.dlq.{consumer}.{event_type}"


class Envelope(CamelModel):
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any]

    @classmethod
    def wrap(cls, payload: EventPayload) -> Envelope:
        return cls(
            type=payload.event_type,
            version=payload.event_version,
            data=payload.model_dump(mode="json", by_alias=True),
        )

    def payload(self) -> EventPayload:
        cls = payload_class(self.type, self.version)
        if cls is None:
            raise UnknownEventError(f"no payload class for {self.type} v{self.version}")
        return cls.model_validate(self.data)


class UnknownEventError(ValueError):
    pass


# --- catalog ---------------------------------------------------------------


class TitleName(CamelModel):
    """One of a title's names: kind romaji, english, native or synonym."""

    kind: str
    language: str
    name: str


@event("catalog.title.created")
class TitleCreatedV1(EventPayload):
    title_id: uuid.UUID
    slug: str
    name: str
    # Added later, optional: producers before it sent no names.
    names: list[TitleName] | None = None


@event("catalog.title.updated")
class TitleUpdatedV1(EventPayload):
    title_id: uuid.UUID
    slug: str
    name: str
    # The title's whole list of names after the change (optional, as above).
    names: list[TitleName] | None = None


@event("catalog.title.deleted")
class TitleDeletedV1(EventPayload):
    title_id: uuid.UUID
    slug: str
    episode_ids: list[uuid.UUID] = Field(default_factory=list)


@event("catalog.episode.uploaded")
class EpisodeUploadedV1(EventPayload):
    """A source file is in storage and the episode waits for transcoding."""

    episode_id: uuid.UUID
    title_id: uuid.UUID
    title_slug: str
    season_id: uuid.UUID
    season_number: int
    episode_number: int
    source_key: str
    # Media's upload id of the source, and the verified subtitle uploads
    # attached to it by id: the transcoder takes exactly these, never whatever
    # lies next to the source.
    source_upload_id: uuid.UUID | None = None
    subtitle_keys: list[str] = Field(default_factory=list)


@event("catalog.episode.deleted")
class EpisodeDeletedV1(EventPayload):
    episode_id: uuid.UUID
    title_id: uuid.UUID


@event("catalog.episode.visibility_changed")
class EpisodeVisibilityChangedV1(EventPayload):
    """Sent when an episode is created and whenever its visibility changes.

    Public episodes may be streamed from plain CDN URLs; private ones only
    through signed URLs."""

    episode_id: uuid.UUID
    title_id: uuid.UUID
    public: bool


class EpisodeMarker(CamelModel):
    """A stretch of an episode: its opening or its ending, in seconds from the start."""

    kind: Literal["opening", "ending"]
    start_sec: float = Field(ge=0)
    end_sec: float = Field(ge=0)


@event("catalog.episode.markers_changed")
class EpisodeMarkersChangedV1(EventPayload):
    """The episode's markers as catalog holds them (detected or an editor's),
    sent whenever they change; the latest event of an episode is its state."""

    episode_id: uuid.UUID
    markers: list[EpisodeMarker] = Field(default_factory=list)
    # Whether an editor set them (detection no longer changes them).
    edited: bool = False


# --- media -----------------------------------------------------------------


@event("media.upload.verified")
class UploadVerifiedV1(EventPayload):
    """An uploaded object passed media's checks; only such a source may be referenced.

    ``kind`` is source, poster, banner or subtitle; ``owner`` the subject of the
    editor who created the upload; ``attached_to`` the source upload a subtitle
    (or art) belongs to."""

    upload_id: uuid.UUID
    key: str
    kind: str
    owner: str
    size: int
    content_type: str
    format: str
    filename: str
    attached_to: uuid.UUID | None = None


# --- transcoder ------------------------------------------------------------


@event("transcoder.transcode.started")
class TranscodeStartedV1(EventPayload):
    episode_id: uuid.UUID
    job_id: uuid.UUID
    attempt: int = 1
    # The folder this attempt writes (``hls/{episodeId}/{version}/``): every
    # attempt has its own, so a retry never overwrites what is being served.
    hls_prefix: str | None = None


@event("transcoder.transcode.progress")
class TranscodeProgressV1(EventPayload):
    episode_id: uuid.UUID
    job_id: uuid.UUID
    percent: float = Field(ge=0, le=100)
    # True once the first segments of every rendition are playable.
    playable: bool = False


@event("transcoder.transcode.playable")
class TranscodePlayableV1(EventPayload):
    """The first segments of every rendition are in storage and the playlists
    (EVENT type, still growing) can be played before the job completes."""

    episode_id: uuid.UUID
    job_id: uuid.UUID
    hls_master_key: str
    renditions: list[str] = Field(default_factory=list)


class SubtitleTrack(CamelModel):
    language: str
    name: str
    # A path inside the episode's HLS folder (``subs/en.vtt``).
    url: str
    format: str = "vtt"


@event("transcoder.transcode.completed")
class TranscodeCompletedV1(EventPayload):
    episode_id: uuid.UUID
    job_id: uuid.UUID
    hls_master_key: str
    # A CDN URL of the master when the transcoder knows one; never a storage path.
    hls_master_url: str | None = None
    duration_sec: float | None = None
    renditions: list[str] = Field(default_factory=list)
    # Paths inside the episode's HLS folder (``thumbs/poster.jpg``), resolved
    # against the playback URL media issues; never storage keys.
    thumbnails: list[str] = Field(default_factory=list)
    subtitles: list[SubtitleTrack] = Field(default_factory=list)


@event("transcoder.transcode.failed")
class TranscodeFailedV1(EventPayload):
    episode_id: uuid.UUID
    job_id: uuid.UUID
    reason: str
    permanent: bool = True
    log_tail: str | None = None
    # Machine-readable cause (not_video, no_video_stream, source_missing, gave_up, ...).
    code: str | None = None
    # The folder of the failed attempt, which nothing will serve.
    hls_prefix: str | None = None


@event("transcoder.episode.markers_detected")
class EpisodeMarkersDetectedV1(EventPayload):
    """The openings and endings found by comparing an episode with its season siblings.

    Sent for a newly transcoded episode (``markers`` may be empty) and for every
    sibling whose markers changed; the latest event of an episode is its state."""

    episode_id: uuid.UUID
    season_id: uuid.UUID
    markers: list[EpisodeMarker] = Field(default_factory=list)
    duration_sec: float | None = None


@event("transcoder.job.retry_requested")
class TranscodeRetryRequestedV1(EventPayload):
    """An editor asked to run a failed job again; the transcoder's worker consumes it."""

    job_id: uuid.UUID
    episode_id: uuid.UUID
    requested_by: str | None = None


@event("transcoder.part.requested")
class TranscodePartRequestedV1(EventPayload):
    """One part of a chunked job waits for a worker: a video chunk (``kind``
    video, ``index`` the chunk), the head (chunk 0 and the audio together) or
    a side job (audio, images, subtitles).

    The transcoder's worker consumes it from the same work queue as the jobs;
    ``part_id`` names the part's row, which says whether it still has to run
    (a re-upload or a deletion cancels it, and it is then acked and dropped)."""

    part_id: uuid.UUID
    job_id: uuid.UUID
    episode_id: uuid.UUID
    kind: Literal["head", "video", "audio", "images", "subtitles"]
    index: int = Field(default=0, ge=0)
    # The job attempt's folder the part writes into.
    hls_prefix: str


# --- media -----------------------------------------------------------------


@event("media.episode.playability_changed")
class EpisodePlayabilityChangedV1(EventPayload):
    """Whether media serves the episode's HLS now: the one source of "playable".

    Sent after media recorded the change, so once a consumer sees
    ``playable: true`` the playback URL route answers for that episode."""

    episode_id: uuid.UUID
    playable: bool
    # media's asset state: pending, playable, ready, failed or deleted.
    state: str


# --- identity --------------------------------------------------------------


@event("identity.user.created")
class UserCreatedV1(EventPayload):
    """A user identity knows: ``userId`` is the id ``/api/me`` and ``/api/admin/users``
    return, ``clerkId`` the token subject. Identity's migration 0003 announces the
    users it held before the event existed."""

    user_id: uuid.UUID
    clerk_id: str


@event("identity.user.role_changed")
class UserRoleChangedV1(EventPayload):
    user_id: uuid.UUID
    clerk_id: str
    old_role: str
    new_role: str


@event("identity.user.deleted")
class UserDeletedV1(EventPayload):
    user_id: uuid.UUID | None = None
    clerk_id: str
