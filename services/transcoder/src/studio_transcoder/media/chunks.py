"""Chunked encoding: the segment grid, the chunks on it, their ffmpeg commands. Pure.

Keyframes are forced on the keyframe interval and segments cut on the grid, so
a chunk that is a whole number of segments decodes only its time range of the
source and writes segments that are, byte for byte in their role, the ones the
one-pass encode would have written there: the same numbers, the same
timestamps. Stitching them is writing playlists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from studio_transcoder.config import TranscoderSettings
from studio_transcoder.media.command import OutputLayout
from studio_transcoder.media.ladder import LadderPlan
from studio_transcoder.media.playlists import Segment

# A grid point closer than this to the end of the source starts no segment
# (no frame lies in it).
_END_EPSILON = 1e-3


@dataclass(frozen=True)
class ChunkSpec:
    index: int
    start: float  # seconds on the source timeline
    end: float  # exclusive; the last chunk ends at the source duration
    first_segment: int  # episode-wide number of its first segment
    segment_count: int

    def to_json(self) -> dict[str, float | int]:
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "firstSegment": self.first_segment,
            "segmentCount": self.segment_count,
        }

    @classmethod
    def from_json(cls, data: dict[str, float | int]) -> ChunkSpec:
        return cls(
            index=int(data["index"]),
            start=float(data["start"]),
            end=float(data["end"]),
            first_segment=int(data["firstSegment"]),
            segment_count=int(data["segmentCount"]),
        )


def segment_boundaries(duration: float, settings: TranscoderSettings) -> list[float]:
    """Where every segment starts, then the end: ``[0, b1, ..., duration]``.

    The first ``initial_segments`` segments are one keyframe interval long,
    the rest ``segment_seconds``; the last one ends with the source.
    """
    if duration <= 0:
        return [0.0]
    out = [0.0]
    n = 1
    while True:
        if n <= settings.initial_segments:
            point = n * settings.keyframe_seconds
        else:
            point = (
                settings.initial_segments * settings.keyframe_seconds
                + (n - settings.initial_segments) * settings.segment_seconds
            )
        if point >= duration - _END_EPSILON:
            break
        out.append(round(point, 6))
        n += 1
    out.append(duration)
    return out


def plan_chunks(duration: float, settings: TranscoderSettings) -> list[ChunkSpec]:
    """The chunks of a source, in order; ``[]`` when it stays one job."""
    if not settings.chunking or duration < settings.chunk_min_seconds:
        return []
    bounds = segment_boundaries(duration, settings)
    count = len(bounds) - 1
    m = settings.chunk_segments
    if count <= m:
        return []
    return [
        ChunkSpec(
            index=k,
            start=bounds[first],
            end=bounds[min(first + m, count)],
            first_segment=first,
            segment_count=min(m, count - first),
        )
        for k, first in enumerate(range(0, count, m))
    ]


def chunk_command(
    settings: TranscoderSettings,
    plan: LadderPlan,
    source: str,
    video_index: int,
    chunk: ChunkSpec,
    layout: OutputLayout,
) -> list[str]:
    """Every video rendition of one chunk: its range of the source, decoded once."""
    raise NotImplementedError


def audio_command(
    settings: TranscoderSettings, plan: LadderPlan, source: str, layout: OutputLayout
) -> list[str]:
    """Every audio rendition of the whole episode (no chunk boundary in audio)."""
    raise NotImplementedError


def images_command(
    settings: TranscoderSettings,
    plan: LadderPlan,
    source: str,
    video_index: int,
    layout: OutputLayout,
) -> list[str]:
    """Poster, stills and trickplay tiles from the source's keyframes only."""
    raise NotImplementedError


def stitched_media_playlist(
    segments: Sequence[Segment], settings: TranscoderSettings, *, final: bool
) -> str:
    """A media playlist of stitched segments: EVENT while growing, VOD + ENDLIST when final."""
    raise NotImplementedError
