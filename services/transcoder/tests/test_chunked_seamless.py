"""Chunked output against one-pass output of the same source, with real ffmpeg.

The same 50 s source is encoded once in one pass and once as chunks run in a
shuffled order (plus the audio, images and subtitles parts). The stitched
ladder must be the one-pass ladder in all that a player sees: the same
segments at the same boundaries, timestamps that run on across every chunk
boundary, and the bit rate the rate control promised.
"""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from studio_transcoder.chunked import (
    NoteReporter,
    PartResult,
    encode_part,
    landed_chunks,
    plan_from_json,
    plan_to_json,
    playable,
    publish_stitched,
    stitched_result,
)
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.media.chunks import plan_chunks
from studio_transcoder.media.ladder import plan_ladder
from studio_transcoder.media.playlists import measure, parse_media_playlist
from studio_transcoder.media.probe import probe
from studio_transcoder.naming import new_version, output_prefix
from studio_transcoder.pipeline import TranscodeAttempt
from studio_transcoder.storage import ObjectStore

SECONDS = 50
FPS = 25
FRAME = 1 / FPS


def _video_packets(path: Path) -> list[tuple[float, float]]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    packets = json.loads(out.stdout)["packets"]
    return sorted((float(p["pts_time"]), float(p.get("duration_time", FRAME))) for p in packets)


@pytest.fixture(scope="module")
def chunk_settings(settings: TranscoderSettings) -> TranscoderSettings:
    return settings.model_copy(
        update={
            "ladder": "360:900,240:450",
            "segment_seconds": 2.0,
            "keyframe_seconds": 1.0,
            "chunk_segments": 5,
            "chunking": True,
            "chunk_min_seconds": 10.0,
            "sprite_interval_seconds": 5.0,
            "still_interval_seconds": 10.0,
        }
    )


async def test_chunks_stitch_into_the_one_pass_ladder(
    chunk_settings: TranscoderSettings, media: Any, jobs: Any, s3: Any, tmp_path: Path
) -> None:
    s = chunk_settings
    # Noise on the pattern: content the rate control has to work for.
    source = media.make(
        "chunked-50s.mp4",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=640x360:rate={FPS}:duration={SECONDS},noise=alls=12:allf=t",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-ac",
        "2",
    )
    key = f"uploads/{uuid.uuid4().hex}/source.mp4"
    jobs.upload(source, key)
    event = jobs.uploaded_event(key)
    store = ObjectStore(s)

    one_pass = output_prefix(event.episode_id, new_version())
    work = tmp_path / "one-pass"
    work.mkdir()
    await TranscodeAttempt(s, store, event, work, NoteReporter(), one_pass).run()

    chunked = output_prefix(event.episode_id, new_version())
    info = await probe(s.ffprobe_path, str(source), label="source", redactions={})
    plan = plan_from_json(json.loads(json.dumps(plan_to_json(plan_ladder(info, s)))))
    chunks = plan_chunks(info.duration, s)
    # 50 s in chunks of five segments: 1 s ones for the first 2 s, then 2 s ones.
    assert len(chunks) == 6
    # As the job queues them: chunk 0 and the audio as the head, then the rest.
    todo: list[tuple[str, Any]] = [("head", chunks[0])] + [("video", c) for c in chunks[1:]]
    todo += [("images", None), ("subtitles", None)]
    random.Random(16).shuffle(todo)
    parts: list[PartResult] = []
    announced: list[str] = []

    async def on_playable(master: str) -> None:
        # The head announces while it still encodes, with the master in storage.
        assert jobs.keys(master) == [master]
        announced.append(master)

    for n, (kind, chunk) in enumerate(todo):
        work = tmp_path / f"part-{n}"
        work.mkdir()
        result = await encode_part(
            s, store, event, chunked, work, kind, chunk,
            plan=plan, video_index=info.video.index, on_playable=on_playable,
        )  # fmt: skip
        # What a worker hands over survives the trip through the database.
        parts.append(PartResult.from_json(json.loads(json.dumps(result.to_json()))))
        if not playable(plan, parts):
            await publish_stitched(s, store, chunked, plan, parts, final=False)
            # No master naming playlists that are not there yet.
            assert not jobs.keys(chunked + "master.m3u8")
        if any(p.kind == "head" for p in parts):
            await publish_stitched(s, store, chunked, plan, parts, final=False)
            listed = parse_media_playlist(jobs.get_text(f"{chunked}360p/index.m3u8"))
            # Only the chunks from 0 on without a gap, however early a later one finished.
            expected = sum(c.segments["360p"].__len__() for c in landed_chunks(parts))
            assert len(listed.segments) == expected
            assert not listed.ended
    master_key = await publish_stitched(s, store, chunked, plan, parts, final=True)
    assert master_key == chunked + "master.m3u8"
    assert announced == [master_key]

    done = stitched_result(plan, parts, master_key=master_key, master_url=None)
    assert done.renditions == ["360p", "240p"]
    assert done.audio_languages == ["und"]
    assert "thumbs/poster.jpg" in done.thumbnails
    assert any(t.startswith("thumbs/sprite_") for t in done.thumbnails)
    assert done.fingerprint is not None

    names = {k[len(one_pass) :] for k in jobs.keys(one_pass) if k.endswith((".ts", ".m3u8"))}
    stitched = {k[len(chunked) :] for k in jobs.keys(chunked) if k.endswith((".ts", ".m3u8"))}
    # The same objects: segment names, playlists, master.
    assert stitched == names

    for rendition in ["360p", "240p", plan.audio[0].name]:
        a = parse_media_playlist(jobs.get_text(f"{one_pass}{rendition}/index.m3u8"))
        b = parse_media_playlist(jobs.get_text(f"{chunked}{rendition}/index.m3u8"))
        assert b.ended
        assert [x.uri for x in b.segments] == [x.uri for x in a.segments]
        for x, y in zip(a.segments, b.segments, strict=True):
            assert abs(x.duration - y.duration) <= FRAME + 1e-6, (rendition, x, y)

    for rendition in ["360p", "240p"]:
        b = parse_media_playlist(jobs.get_text(f"{chunked}{rendition}/index.m3u8"))
        a = parse_media_playlist(jobs.get_text(f"{one_pass}{rendition}/index.m3u8"))
        folder = tmp_path / rendition
        folder.mkdir()
        previous_end: float | None = None
        sizes_a, sizes_b = [], []
        for x, y in zip(a.segments, b.segments, strict=True):
            local_a = jobs.download(f"{one_pass}{rendition}/{x.uri}", folder / f"a-{x.uri}")
            local_b = jobs.download(f"{chunked}{rendition}/{y.uri}", folder / f"b-{y.uri}")
            sizes_a.append((x.duration, local_a.stat().st_size))
            sizes_b.append((y.duration, local_b.stat().st_size))
            packets_a, packets_b = _video_packets(local_a), _video_packets(local_b)
            assert len(packets_b) == len(packets_a), (rendition, y.uri)
            first = packets_b[0][0]
            # The same clock as the one-pass segment ...
            assert abs(first - packets_a[0][0]) < 1e-3, (rendition, y.uri)
            # ... and no gap or overlap after the segment before (chunk boundaries included).
            if previous_end is not None:
                assert abs(first - previous_end) < 1e-3, (rendition, y.uri, previous_end)
            previous_end = packets_b[-1][0] + packets_b[-1][1]
        bw_a = measure(sizes_a, s.segment_seconds)
        bw_b = measure(sizes_b, s.segment_seconds)
        assert bw_a is not None
        assert bw_b is not None
        print(f"{rendition}: one-pass {bw_a}, chunked {bw_b}")
        assert abs(bw_b.average - bw_a.average) <= 0.10 * bw_a.average, (rendition, bw_a, bw_b)
        assert abs(bw_b.peak - bw_a.peak) <= 0.10 * bw_a.peak, (rendition, bw_a, bw_b)

    master = jobs.get_text(master_key)
    assert "BANDWIDTH=" in master
    assert "#EXT-X-MEDIA:TYPE=AUDIO" in master
