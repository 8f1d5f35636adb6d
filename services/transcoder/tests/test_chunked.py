"""Chunked transcoding end to end: a source above the threshold split into parts
on the work queue, taken by several workers, stitched in order, completed once;
a part whose worker dies is redone alone; a newer upload or a deletion cancels
the outstanding parts. Real ffmpeg, Postgres, NATS and the S3 stand-in."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from studio_common.events import EpisodeDeletedV1
from studio_common.testing.jetstream import wait_until
from studio_transcoder.media.chunks import plan_chunks, segment_boundaries
from studio_transcoder.models import TranscodePart
from studio_transcoder.partstate import ordered_parts

ROOT = Path(__file__).resolve().parents[3]
SECONDS = 40
# 1 s keyframes, 2 s segments (the first two seconds in 1 s ones): 21 segments;
# 4 per chunk: 6 chunks (chunk 0 with the audio as the head), plus the images
# and subtitles parts.
CHUNKED: dict[str, Any] = {
    "segment_seconds": 2.0,
    "keyframe_seconds": 1.0,
    "chunk_segments": 4,
    "chunking": True,
    "chunk_min_seconds": 10.0,
    "still_interval_seconds": 10.0,
    "sprite_interval_seconds": 2.0,
}


@pytest.fixture(scope="session")
def long_source(media):
    return media.video("forty-seconds.mp4", size="640x360", seconds=SECONDS)


@pytest.fixture
def chunked_settings(settings):
    return settings.model_copy(update=CHUNKED)


async def parts_of(db, job_id: uuid.UUID) -> list[TranscodePart]:
    async with db.transaction() as session:
        rows = await session.scalars(
            select(TranscodePart)
            .where(TranscodePart.job_id == job_id)
            .execution_options(populate_existing=True)
        )
        return list(rows.all())


def prefix_of(job) -> str:
    return str(job.result["hlsMasterKey"]).removesuffix("master.m3u8")


def segment_numbers(playlist: str) -> list[int]:
    return [int(n) for n in re.findall(r"seg_(\d+)\.ts", playlist)]


def durations(playlist: str) -> list[float]:
    return [float(d) for d in re.findall(r"#EXTINF:([0-9.]+),", playlist)]


def test_the_head_is_queued_first_then_the_side_parts_then_the_chunks(chunked_settings) -> None:
    chunks = plan_chunks(SECONDS, chunked_settings)
    assert len(chunks) == 6
    order = [(p.kind, p.index) for p in ordered_parts(chunks, ["images", "subtitles"])]
    assert order == [
        ("head", 0),
        ("subtitles", 0),
        ("images", 0),
        *[("video", i) for i in range(1, 6)],
    ]


async def test_two_workers_stitch_a_long_source_that_ends_ready_once(
    start_worker, jobs, db, long_source, chunked_settings
):
    await start_worker(**CHUNKED)
    await start_worker(**CHUNKED)
    key = f"uploads/{uuid.uuid4().hex}/{long_source.name}"
    jobs.upload(long_source, key)
    event = jobs.uploaded_event(key)
    envelope = await jobs.publish(event)

    async def split():
        job = await jobs.job(event.episode_id)
        return job if job is not None and await parts_of(db, job.id) else None

    await wait_until(split, within=60, interval=0.1)
    # The same event delivered again once the job is split: its parts carry it.
    await jobs.publish(event, envelope)
    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=120)
    assert job.status == "ready", job.error_reason
    assert job.attempts == 1

    parts = await parts_of(db, job.id)
    assert sorted((p.kind, p.index) for p in parts) == sorted(
        [("head", 0)] + [("video", i) for i in range(1, 6)] + [("images", 0), ("subtitles", 0)]
    )
    assert {(p.state, p.attempts) for p in parts} == {("done", 1)}

    done = await jobs.follow(job.result["hlsMasterKey"])
    prefix = prefix_of(job)
    video = done["playlists"][prefix + "360p/index.m3u8"]
    grid = segment_boundaries(SECONDS, chunked_settings)
    assert segment_numbers(video) == list(range(len(grid) - 1))
    assert video.endswith("#EXT-X-ENDLIST\n")
    assert sum(durations(video)) == pytest.approx(SECONDS, abs=0.2)
    assert durations(video) == pytest.approx([b - a for a, b in itertools.pairwise(grid)], abs=0.05)
    assert durations(video)[:3] == pytest.approx([1.0, 1.0, 2.0], abs=0.05)
    audio = [k for k in done["playlists"] if "/audio" in k]
    assert audio, done["playlists"].keys()
    for key in audio:
        assert done["playlists"][key].endswith("#EXT-X-ENDLIST\n")
        assert sum(durations(done["playlists"][key])) == pytest.approx(SECONDS, abs=0.2)
    assert job.result["thumbnails"], "the images part's poster and sprite"

    # One completion, as a one-pass job announces it; playable once, before it.
    await jobs.wait_events("transcoder.transcode.completed", job_id=job.id)
    await asyncio.sleep(0.5)
    [completed] = await jobs.events("transcoder.transcode.completed", job_id=job.id)
    assert completed["data"]["hlsMasterKey"] == job.result["hlsMasterKey"]
    assert completed["data"]["renditions"] == ["360p"]
    [playable] = await jobs.events("transcoder.transcode.playable", job_id=job.id)
    assert playable["occurredAt"] < completed["occurredAt"]
    # From the head's first segments, before the head itself was done.
    [head] = [p for p in parts if p.kind == "head"]
    assert datetime.fromisoformat(playable["occurredAt"]) < head.finished_at
    progress = await jobs.events("transcoder.transcode.progress", job_id=job.id)
    percents = [e["data"]["percent"] for e in progress]
    assert percents == sorted(percents)
    assert len(set(percents)) == len(percents)
    assert percents[0] > 0
    assert percents[-1] <= 99
    assert len(await jobs.events("transcoder.transcode.started", job_id=job.id)) == 1


def worker_env(settings, **over) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSCODER_", "STUDIO_"))}
    for name, value in {**settings.model_dump(), **over}.items():
        if value is None:
            continue
        env[f"TRANSCODER_{name.upper()}"] = (
            ("true" if value else "false") if isinstance(value, bool) else str(value)
        )
    return env


async def test_a_part_whose_worker_is_killed_is_redone_alone_and_nothing_is_duplicated(
    start_worker, jobs, db, long_source, settings, chunked_settings
):
    # A worker process of its own, reading at realtime so a chunk takes seconds.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "studio_transcoder",
        "worker",
        cwd=ROOT,
        env=worker_env(settings, **CHUNKED, input_read_rate=1.0, log_json=False),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        event = await jobs.submit(long_source)
        job = await jobs.wait_for(event.episode_id, "processing", within=60)

        async def encoding() -> TranscodePart | None:
            found = [p for p in await parts_of(db, job.id) if p.state == "processing"]
            return found[0] if found else None

        victim = await wait_until(encoding, within=60, interval=0.1)
        await asyncio.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # Another worker takes the killed part again after ack_wait, and the rest.
    await start_worker(**CHUNKED)
    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=180)
    assert job.status == "ready", job.error_reason
    assert job.attempts == 1, "only the part is redone, not the job"
    parts = {(p.kind, p.index): p for p in await parts_of(db, job.id)}
    assert parts[(victim.kind, victim.index)].attempts == 2
    assert all(p.state == "done" for p in parts.values())
    assert sum(p.attempts for p in parts.values()) == len(parts) + 1

    await jobs.wait_events("transcoder.transcode.completed", job_id=job.id)
    await asyncio.sleep(0.5)
    assert len(await jobs.events("transcoder.transcode.completed", job_id=job.id)) == 1
    assert len(await jobs.events("transcoder.transcode.playable", job_id=job.id)) == 1

    done = await jobs.follow(job.result["hlsMasterKey"])
    prefix = prefix_of(job)
    expected = len(segment_boundaries(SECONDS, chunked_settings)) - 1
    assert segment_numbers(done["playlists"][prefix + "360p/index.m3u8"]) == list(range(expected))
    # Nothing in storage that the final playlists do not list: the redone
    # chunk wrote the same keys again.
    listed = {job.result["hlsMasterKey"], *done["playlists"]}
    for key, text in done["playlists"].items():
        folder = key.rsplit("/", 1)[0]
        listed |= {
            f"{folder}/{line}" for line in text.splitlines() if line and not line.startswith("#")
        }
    media_keys = {
        k
        for k in jobs.keys(prefix)
        if not k.startswith((f"{prefix}thumbs/", f"{prefix}subs/", f"{prefix}fonts/"))
    }
    assert media_keys == listed


async def test_a_new_upload_cancels_the_outstanding_parts_of_the_old_one(
    start_worker, jobs, db, long_source, media, client, auth
):
    # Realtime reading keeps the first job's parts outstanding for a while.
    await start_worker(**CHUNKED, input_read_rate=1.0)
    first = await jobs.submit(long_source)
    old = await jobs.wait_for(first.episode_id, "processing", within=60)

    async def split() -> list[TranscodePart] | None:
        parts = await parts_of(db, old.id)
        return parts if any(p.state == "processing" for p in parts) else None

    await wait_until(split, within=60, interval=0.1)

    # The same episode, a new (short, one-pass) source.
    short = media.video("three-seconds.mp4", size="320x240", seconds=3)
    await jobs.submit(short, episode_id=first.episode_id, title_id=first.title_id)

    async def superseded():
        job = await jobs.job_by_id(old.id)
        return job if job.status == "failed" else None

    gone = await wait_until(superseded, within=60, interval=0.2)
    assert gone.error_code == "superseded"
    # Retrying it would replace the newer upload's output.
    r = await client.post(f"/api/admin/jobs/{old.id}/retry", headers=auth.editor)
    assert r.status_code == 409, r.text
    assert r.json()["type"] == "urn:studio:problem:conflict"
    parts = await parts_of(db, old.id)
    assert all(p.state in ("done", "cancelled") for p in parts)
    assert any(p.state == "cancelled" for p in parts)

    async def new_ready():
        found = [j for j in await jobs.jobs_of(first.episode_id) if j.id != old.id]
        return found[0] if found and found[0].status == "ready" else None

    new = await wait_until(new_ready, within=90, interval=0.2)
    await asyncio.sleep(1.0)
    # Nothing announced for the superseded job; the new one completes.
    assert await jobs.events("transcoder.transcode.failed", job_id=old.id) == []
    assert await jobs.events("transcoder.transcode.completed", job_id=old.id) == []
    assert len(await jobs.events("transcoder.transcode.completed", job_id=new.id)) == 1
    # The cancelled parts' messages were taken and dropped: no part ran again.
    after = await parts_of(db, old.id)
    assert [(p.state, p.attempts) for p in after] == [(p.state, p.attempts) for p in parts]


async def test_deleting_the_episode_cancels_its_parts(start_worker, jobs, db, long_source):
    await start_worker(**CHUNKED, input_read_rate=1.0)
    event = await jobs.submit(long_source)
    job = await jobs.wait_for(event.episode_id, "processing", within=60)

    async def encoding():
        parts = await parts_of(db, job.id)
        return parts if any(p.state == "processing" for p in parts) else None

    await wait_until(encoding, within=60, interval=0.1)
    await jobs.publish(EpisodeDeletedV1(episode_id=event.episode_id, title_id=event.title_id))

    async def cancelled():
        parts = await parts_of(db, job.id)
        return parts if all(p.state in ("done", "cancelled") for p in parts) else None

    await wait_until(cancelled, within=30, interval=0.2)
    gone = await jobs.job_by_id(job.id)
    assert (gone.status, gone.error_code) == ("failed", "episode_deleted")
    # The part being encoded stops too: no part ends in processing, and none lands later.
    await asyncio.sleep(3 * CHUNKED["keyframe_seconds"] + 2)
    parts = await parts_of(db, job.id)
    assert not any(p.state == "processing" for p in parts)
    assert await jobs.events("transcoder.transcode.completed", job_id=job.id) == []


async def test_a_failed_part_is_retried_alone(
    start_worker, jobs, db, long_source, settings, processes
):
    # Four times realtime: a chunk's ffmpeg runs long enough to be killed.
    await start_worker(**CHUNKED, input_read_rate=4.0)
    event = await jobs.submit(long_source)
    job = await jobs.wait_for(event.episode_id, "processing", within=60)

    async def chunk_encoding() -> tuple[TranscodePart, list[int]] | None:
        for part in await parts_of(db, job.id):
            if part.kind == "video" and part.state == "processing":
                # The part's temp folder is named after its id.
                pids = processes(f"-{part.id.hex[:8]}-", program="ffmpeg")
                if pids:
                    return part, pids
        return None

    victim, pids = await wait_until(chunk_encoding, within=60, interval=0.1)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=180)
    assert job.status == "ready", job.error_reason
    assert job.attempts == 1
    parts = {(p.kind, p.index): p for p in await parts_of(db, job.id)}
    assert parts[(victim.kind, victim.index)].attempts == 2
    assert sum(p.attempts for p in parts.values()) == len(parts) + 1
    assert f"chunk {victim.index} failed (attempt 1)" in job.log_tail
    assert len(await jobs.events("transcoder.transcode.started", job_id=job.id)) == 1
    assert await jobs.events("transcoder.transcode.failed", job_id=job.id) == []
