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
from studio_transcoder.media.command import (
    POSTER_NAME,
    PROGRESS_ARGS,
    STILL_PATTERN,
    TILE_PATTERN,
    TS_OFFSET_SECONDS,
    OutputLayout,
    audio_outputs,
    cut_times,
    fmt_seconds,
    image_output,
    segment_args,
    segment_boundaries,
    thumbnail_filters,
    video_codec_args,
    video_filters,
)
from studio_transcoder.media.ladder import LadderPlan
from studio_transcoder.media.playlists import Segment, render_media_playlist, target_duration
from studio_transcoder.media.probe import input_options


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


def _head(settings: TranscoderSettings) -> list[str]:
    argv = [settings.ffmpeg_path, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning"]
    if settings.input_read_rate > 0:
        argv += ["-readrate", fmt_seconds(settings.input_read_rate)]
    return argv


def chunk_keyframes(settings: TranscoderSettings) -> str:
    """A keyframe on the first frame and then on the first frame of every new
    keyframe interval. Unlike counting forced keyframes from zero, this holds
    whatever time the chunk's frames carry (its own 0, or the episode's)."""
    k = fmt_seconds(settings.keyframe_seconds)
    return f"expr:if(isnan(prev_forced_t),1,gte(floor(t/{k}+1e-6)-floor(prev_forced_t/{k}+1e-6),1))"


def chunk_command(
    settings: TranscoderSettings,
    plan: LadderPlan,
    source: str,
    video_index: int,
    chunk: ChunkSpec,
    layout: OutputLayout,
) -> list[str]:
    """Every video rendition of one chunk: its range of the source, decoded once.

    An accurate input seek decodes from the keyframe before ``start`` and
    drops the frames before it; ``-t`` stops at ``end``: consecutive chunks
    take every frame exactly once. Segment numbers continue the episode's
    (``-start_number``) and timestamps are the episode's (``-output_ts_offset``),
    so the segments are the ones a one-pass encode writes there."""
    argv = _head(settings)
    argv += ["-ss", fmt_seconds(chunk.start), "-t", fmt_seconds(chunk.end - chunk.start)]
    argv += [*input_options(source), "-i", source]
    n = len(plan.video)
    graph = [f"[0:{video_index}]split={n}" + "".join(f"[in_v{i}]" for i in range(n))]
    graph += video_filters(plan)
    argv += ["-filter_complex", ";".join(graph)]
    times = cut_times(
        segment_boundaries(plan.duration, settings), chunk.start, chunk.end, TS_OFFSET_SECONDS
    )
    for i, r in enumerate(plan.video):
        argv += ["-map", f"[v{i}]", *video_codec_args(settings, plan, i, chunk_keyframes(settings))]
        argv += ["-output_ts_offset", fmt_seconds(TS_OFFSET_SECONDS + chunk.start)]
        argv += segment_args(layout.rendition(r.name), times, start_number=chunk.first_segment)
    argv += PROGRESS_ARGS
    return argv


def audio_command(
    settings: TranscoderSettings, plan: LadderPlan, source: str, layout: OutputLayout
) -> list[str]:
    """Every audio rendition of the whole episode (no chunk boundary in audio):
    the same segments and timestamps as the audio of a one-pass encode."""
    if not plan.audio:
        raise ValueError("the plan has no audio rendition")
    argv = _head(settings)
    argv += [*input_options(source), "-i", source]
    times = cut_times(
        segment_boundaries(plan.duration, settings), 0.0, plan.duration, TS_OFFSET_SECONDS
    )
    argv += audio_outputs(settings, plan, layout, times)
    argv += PROGRESS_ARGS
    return argv


def images_command(
    settings: TranscoderSettings,
    plan: LadderPlan,
    source: str,
    video_index: int,
    layout: OutputLayout,
) -> list[str]:
    """Poster, stills and trickplay tiles from the source's keyframes only.

    Decoding only keyframes (``-skip_frame nokey``) costs a small fraction of
    a full decode; each image is the last keyframe at or before its time,
    close enough for a thumbnail."""
    argv = _head(settings)
    argv += ["-skip_frame", "nokey", *input_options(source), "-i", source]
    graph = [f"[0:{video_index}]split=3[in_poster][in_stills][in_sprite]"]
    graph += thumbnail_filters(plan)
    argv += ["-filter_complex", ";".join(graph)]
    argv += [*image_output("poster", 3), "-update", "1", str(layout.thumbs / POSTER_NAME)]
    argv += [*image_output("stills", 4), str(layout.thumbs / STILL_PATTERN)]
    argv += [*image_output("sprite", 5), str(layout.tiles / TILE_PATTERN)]
    argv += PROGRESS_ARGS
    return argv


def stitched_media_playlist(
    segments: Sequence[Segment], settings: TranscoderSettings, *, final: bool
) -> str:
    """A media playlist of stitched segments: EVENT while growing, VOD + ENDLIST when final."""
    return render_media_playlist(
        segments,
        target=target_duration(settings.segment_seconds, segments),
        ended=final,
        playlist_type="VOD" if final else "EVENT",
    )
