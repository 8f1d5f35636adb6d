"""One part of a chunked job, and the playlists stitched from the parts. No DB, no NATS.

A part is a video chunk (every video rendition of a range of segments), or one
of the side jobs encoded once for the whole episode: ``audio`` (every audio
rendition, and the fingerprint), ``images`` (poster, stills, sprite) and
``subtitles``. Each writes under the episode's prefix at the same keys the
one-pass encode uses, so a part done again overwrites its own objects and
nothing is duplicated. What a part put in storage comes back as a
:class:`PartResult`, which is all the stitching needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio_common.events import EpisodeUploadedV1
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.media.chunks import ChunkSpec
from studio_transcoder.media.ladder import LadderPlan
from studio_transcoder.media.playlists import Segment
from studio_transcoder.storage import ObjectStore

PART_KINDS = ("video", "audio", "images", "subtitles")


@dataclass
class PartResult:
    """What a chunk or side job put in storage."""

    kind: str  # "video" | "audio" | "images" | "subtitles"
    index: int  # chunk index (0 for side jobs)
    # rendition name -> its segments (name, duration, bytes) in order
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    # side job details: thumbnails, subtitle tracks and master entries,
    # fingerprint, notes for the job log
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "index": self.index,
            "segments": {
                name: [[s.uri, s.duration, s.size] for s in segments]
                for name, segments in self.segments.items()
            },
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartResult:
        return cls(
            kind=str(data["kind"]),
            index=int(data["index"]),
            segments={
                name: [Segment(str(u), float(d), int(b)) for u, d, b in segments]
                for name, segments in data.get("segments", {}).items()
            },
            extra=dict(data.get("extra", {})),
        )


async def encode_part(
    settings: TranscoderSettings,
    store: ObjectStore,
    event: EpisodeUploadedV1,
    prefix: str,
    workdir: Path,
    kind: str,
    chunk: ChunkSpec | None,
    on_progress: Callable[[float], Awaitable[None]] | None = None,
    *,
    plan: LadderPlan | None = None,
) -> PartResult:
    """Encodes one part into storage under ``prefix``; safe to run again.

    ``plan`` is the ladder planned when the job was split (see
    :func:`plan_to_json`); without it the part probes the source and plans it
    again (the same source and settings give the same plan).
    ``on_progress`` gets the fraction of this part done, 0..1."""
    raise NotImplementedError


async def publish_stitched(
    settings: TranscoderSettings,
    store: ObjectStore,
    prefix: str,
    plan: LadderPlan,
    parts: Sequence[PartResult],
    *,
    final: bool,
) -> str:
    """Writes every media playlist (the contiguous landed video chunks from
    chunk 0, in order; the audio once its part landed) and the master; returns
    the master's key. ``final``: every part is in; VOD playlists and the master
    with measured bandwidth."""
    raise NotImplementedError


def plan_to_json(plan: LadderPlan) -> dict[str, Any]:
    """The ladder plan as JSON, to keep with the job so every part encodes the same ladder."""
    raise NotImplementedError


def plan_from_json(data: dict[str, Any]) -> LadderPlan:
    raise NotImplementedError
