"""The chunk plan on the segment grid, and the chunk commands. Pure."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from studio_transcoder.config import TranscoderSettings
from studio_transcoder.media.chunks import (
    ChunkSpec,
    audio_command,
    chunk_command,
    images_command,
    plan_chunks,
    segment_boundaries,
    stitched_media_playlist,
)
from studio_transcoder.media.command import OutputLayout
from studio_transcoder.media.ladder import plan_ladder
from studio_transcoder.media.playlists import Segment, parse_media_playlist
from studio_transcoder.media.probe import AudioStream, SourceInfo, VideoStream


def settings(**over: object) -> TranscoderSettings:
    return TranscoderSettings(**{"chunking": True, **over})  # type: ignore[arg-type]


def source_info(duration: float = 900.0) -> SourceInfo:
    return SourceInfo(
        format_name="matroska",
        duration=duration,
        video=VideoStream(0, "h264", 1920, 1080, 23.976, "yuv420p"),
        audio=(AudioStream(1, "aac", "ja", True, None, 2, True, True),),
        subtitles=(),
    )


def test_boundaries_follow_the_segment_length_and_end_with_the_source():
    s = settings(segment_seconds=6, keyframe_seconds=2, short_start=False)
    assert segment_boundaries(20.0, s) == [0.0, 6.0, 12.0, 18.0, 20.0]
    # A whole number of segments: no empty segment at the end.
    assert segment_boundaries(18.0, s) == [0.0, 6.0, 12.0, 18.0]
    # A grid point a hair before the end starts no frame-less segment.
    assert segment_boundaries(18.0004, s) == [0.0, 6.0, 12.0, 18.0004]
    assert segment_boundaries(0.5, s) == [0.0, 0.5]


def test_the_first_segment_length_is_cut_on_every_keyframe():
    s = settings(segment_seconds=6, keyframe_seconds=2)
    assert s.short_start
    assert segment_boundaries(20.0, s) == [0.0, 2.0, 4.0, 6.0, 12.0, 18.0, 20.0]
    assert segment_boundaries(5.0, s) == [0.0, 2.0, 4.0, 5.0]
    assert segment_boundaries(0.5, s) == [0.0, 0.5]
    # Segments as long as a keyframe interval: nothing to shorten.
    same = settings(segment_seconds=2, keyframe_seconds=2)
    assert segment_boundaries(7.0, same) == [0.0, 2.0, 4.0, 6.0, 7.0]


def test_short_or_switched_off_sources_stay_one_job():
    s = settings(chunk_min_seconds=300, chunk_segments=10)
    assert plan_chunks(299.9, s) == []
    assert plan_chunks(3600.0, settings(chunking=False)) == []
    # Long enough, but no more segments than one chunk holds.
    assert plan_chunks(40.0, settings(chunk_min_seconds=10, chunk_segments=10)) == []


@pytest.mark.parametrize("seed", range(40))
def test_chunks_tile_the_grid_without_gaps(seed: int):
    rng = random.Random(seed)
    keyframe = rng.choice([1.0, 2.0, 2.5])
    s = settings(
        keyframe_seconds=keyframe,
        segment_seconds=keyframe * rng.randint(1, 4),
        chunk_segments=rng.randint(1, 15),
        chunk_min_seconds=10,
    )
    s = s.model_copy(update={"short_start": rng.random() < 0.5})
    duration = rng.uniform(10, 4000)
    chunks = plan_chunks(duration, s)
    bounds = segment_boundaries(duration, s)
    if len(bounds) - 1 <= s.chunk_segments:
        assert chunks == []
        return
    assert chunks[0].start == 0
    assert chunks[0].first_segment == 0
    assert chunks[-1].end == duration
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for before, after in itertools.pairwise(chunks):
        assert before.end == after.start
        assert before.first_segment + before.segment_count == after.first_segment
        assert before.segment_count == s.chunk_segments
    assert sum(c.segment_count for c in chunks) == len(bounds) - 1
    for c in chunks:
        # Every chunk starts and ends on the grid, i.e. on a forced keyframe.
        assert bounds[c.first_segment] == c.start
        assert bounds[c.first_segment + c.segment_count] == c.end
        assert 0 < c.end - c.start <= s.chunk_segments * s.segment_seconds + 1e-6
        assert ChunkSpec.from_json(c.to_json()) == c


def test_a_chunk_decodes_only_its_range_and_continues_the_episode():
    s = settings()
    plan = plan_ladder(source_info(), s)
    layout = OutputLayout(Path("/w/out"))
    chunk = ChunkSpec(index=2, start=120.0, end=180.0, first_segment=20, segment_count=10)
    argv = chunk_command(s, plan, "/w/source.mkv", 0, chunk, layout)
    joined = " ".join(argv)
    # Input seek before -i (accurate, decodes only from the keyframe before 120 s).
    assert argv.index("-ss") < argv.index("-i")
    assert argv[argv.index("-ss") + 1] == "120"
    assert argv[argv.index("-t") + 1] == "60"
    assert argv[argv.index("-segment_start_number") + 1] == "20"
    assert argv[argv.index("-output_ts_offset") + 1] == "121"
    # Cut on the episode's grid, in the episode's timestamps (1 s in).
    assert argv[argv.index("-segment_times") + 1] == "127,133,139,145,151,157,163,169,175"
    # Video only: no audio mapped, no images.
    assert "-c:a" not in argv
    assert "0:1" not in argv
    assert ".jpg" not in joined
    lists = [argv[i + 1] for i, a in enumerate(argv) if a == "-segment_list"]
    assert lists == [f"/w/out/hls/{n}/index.m3u8" for n in ("1080p", "720p", "480p")]


def test_side_jobs_are_audio_only_and_keyframes_only():
    s = settings()
    plan = plan_ladder(source_info(), s)
    layout = OutputLayout(Path("/w/out"))
    audio = audio_command(s, plan, "/w/source.mkv", layout)
    assert "-c:v" not in audio
    assert "-map" in audio
    assert audio[audio.index("-map") + 1] == "0:1"
    assert audio[audio.index("-output_ts_offset") + 1] == "1"
    images = images_command(s, plan, "/w/source.mkv", 0, layout)
    assert images[images.index("-skip_frame") + 1] == "nokey"
    assert images.index("-skip_frame") < images.index("-i")
    assert "segment" not in images


def test_stitched_playlist_grows_as_event_and_ends_as_vod():
    s = settings()
    segs = [Segment(f"seg_{i:05d}.ts", 6.0, 1000) for i in range(3)]
    growing = stitched_media_playlist(segs, s, final=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing
    assert "#EXT-X-ENDLIST" not in growing
    final = stitched_media_playlist(segs, s, final=True)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in final
    assert final.rstrip().endswith("#EXT-X-ENDLIST")
    parsed = parse_media_playlist(final)
    assert [x.uri for x in parsed.segments] == [x.uri for x in segs]
    assert parsed.ended


def test_the_plan_and_part_results_survive_json():
    import json

    from studio_transcoder.chunked import PartResult, landed_chunks, plan_from_json, plan_to_json
    from studio_transcoder.media.ladder import SubtitleFile
    from studio_transcoder.media.probe import SubtitleStream

    info = source_info()
    info = SourceInfo(
        info.format_name,
        info.duration,
        info.video,
        info.audio,
        (SubtitleStream(2, "ass", "en", "Signs", forced=True),),
    )
    plan = plan_ladder(info, settings(), [SubtitleFile("subtitles/a.pt-BR.srt", "pt-BR", "srt")])
    assert plan_from_json(json.loads(json.dumps(plan_to_json(plan)))) == plan

    def video(index: int) -> PartResult:
        return PartResult("video", index, {"1080p": [Segment(f"seg_{index:05d}.ts", 6.0, 9)]})

    parts = [video(2), PartResult("audio", 0), video(0), video(3)]
    parts = [PartResult.from_json(json.loads(json.dumps(p.to_json()))) for p in parts]
    assert parts[0].segments["1080p"] == [Segment("seg_00002.ts", 6.0, 9)]
    # Chunk 1 has not landed: 2 and 3 wait.
    assert [p.index for p in landed_chunks(parts)] == [0]
    assert [p.index for p in landed_chunks([*parts, video(1)])] == [0, 1, 2, 3]
