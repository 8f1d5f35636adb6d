"""Progress, playable-before-ready, graceful shutdown and a worker killed mid-job."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import pytest

from studio_common.testing.jetstream import wait_until

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def four_seconds(media):
    return media.video("four-seconds.mp4", size="640x360", seconds=4)


def prefix_of(job) -> str:
    return str(job.result["hlsMasterKey"]).removesuffix("master.m3u8")


async def test_progress_arrives_in_order_and_the_episode_is_playable_before_ready(
    start_worker, jobs, four_seconds
):
    # Read at realtime, so the 4 s source takes about 4 s to encode.
    await start_worker(input_read_rate=1.0)
    event = await jobs.submit(four_seconds)

    async def playable():
        job = await jobs.job(event.episode_id)
        return job if job is not None and job.playable else None

    job = await wait_until(playable, within=30)
    assert job.status == "processing"
    # Playable now: the master and growing EVENT playlists of what is in storage.
    prefix = job.output_prefix
    assert prefix.startswith(f"hls/{event.episode_id}/")
    early = await jobs.follow(prefix + "master.m3u8")
    video = early["playlists"][prefix + "360p/index.m3u8"]
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in video
    assert "#EXT-X-ENDLIST" not in video
    assert 1 <= early["segments"][prefix + "360p/index.m3u8"] < 4

    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=30)
    assert job.status == "ready", job.error_reason
    done = await jobs.follow(job.result["hlsMasterKey"])
    final = done["playlists"][f"{prefix_of(job)}360p/index.m3u8"]
    assert final.endswith("#EXT-X-ENDLIST\n")
    assert done["segments"][f"{prefix_of(job)}360p/index.m3u8"] == 4

    await jobs.wait_events("transcoder.transcode.completed", job_id=job.id)
    kinds = (
        "transcoder.transcode.started",
        "transcoder.transcode.progress",
        "transcoder.transcode.playable",
        "transcoder.transcode.completed",
    )
    timeline = []
    for kind in kinds:
        for env in await jobs.events(kind, job_id=job.id):
            timeline.append((datetime.fromisoformat(env["occurredAt"]), kind, env["data"]))
    timeline.sort(key=lambda t: t[0])
    order = [kind for _, kind, _ in timeline]
    assert order[0] == "transcoder.transcode.started"
    assert order[-1] == "transcoder.transcode.completed"
    assert order.count("transcoder.transcode.playable") == 1
    percents = [data["percent"] for _, kind, data in timeline if kind.endswith("progress")]
    assert len(percents) >= 3, percents
    assert percents == sorted(percents)
    assert len(set(percents)) == len(percents)
    assert percents[0] > 0
    assert percents[-1] <= 99
    after_playable = order.index("transcoder.transcode.playable")
    for _, kind, data in timeline[after_playable:]:
        assert data.get("playable", True) is True, kind
    playable = next(data for _, kind, data in timeline if kind.endswith("playable"))
    assert playable["hlsMasterKey"] == job.result["hlsMasterKey"]
    assert playable["renditions"] == ["360p"]


async def test_shutdown_waits_for_a_job_that_finishes_within_the_grace_period(
    start_worker, jobs, media
):
    worker = await start_worker(input_read_rate=1.0)
    event = await jobs.submit(media.video("two-seconds.mp4", size="320x240", seconds=2))
    await jobs.wait_for(event.episode_id, "processing")
    await worker.stop(grace=30)
    job = await jobs.job(event.episode_id)
    assert (job.status, job.attempts) == ("ready", 1)


async def test_shutdown_hands_an_unfinished_job_back_without_spending_an_attempt(
    start_worker, jobs, four_seconds, settings
):
    first = await start_worker(input_read_rate=1.0)
    event = await jobs.submit(four_seconds)

    async def encoding():
        job = await jobs.job(event.episode_id)
        return job if job is not None and job.progress > 0 else None

    await wait_until(encoding, within=30)
    await first.stop(grace=0.2)
    job = await jobs.job(event.episode_id)
    assert (job.status, job.attempts) == ("queued", 0)
    assert "handed back" in job.log_tail
    assert workdirs(settings, "studio-transcode-*") == []

    # Nacked, so the next worker takes it at once rather than after ack_wait.
    await start_worker()
    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=30)
    assert (job.status, job.attempts) == ("ready", 1)


def worker_env(settings, **over) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSCODER_", "STUDIO_"))}
    values = {**settings.model_dump(), **over}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"TRANSCODER_{name.upper()}"] = text
    return env


def workdirs(settings, pattern: str) -> list[Path]:
    return sorted(Path(settings.work_dir).glob(pattern))


async def test_a_worker_killed_mid_job_leaves_a_job_that_completes_once(
    start_worker, jobs, four_seconds, settings, processes
):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "studio_transcoder",
        "worker",
        cwd=ROOT,
        env=worker_env(settings, input_read_rate=1.0, log_json=False),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        event = await jobs.submit(four_seconds)

        async def uploading():
            job = await jobs.job(event.episode_id)
            return job if job is not None and job.playable else None

        await wait_until(uploading, within=40)
        [workdir] = workdirs(settings, f"studio-transcode-{proc.pid}-*")
        assert processes(str(workdir)), "ffmpeg should be running"
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # Its ffmpeg died with it, and nothing acked the message.
    await asyncio.sleep(0.2)
    assert processes(str(workdir)) == []
    job = await jobs.job(event.episode_id)
    assert (job.status, job.attempts) == ("processing", 1)

    # Another worker gets the message again after ack_wait and starts over.
    await start_worker()
    assert workdirs(settings, workdir.name) == [], (
        "the dead worker's temp folder is cleaned at start"
    )
    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=30)
    assert (job.status, job.attempts) == ("ready", 2)

    started = await jobs.events("transcoder.transcode.started", job_id=job.id)
    assert [s["data"]["attempt"] for s in started] == [1, 2]
    # The redone attempt wrote a folder of its own; the dead one's is never overwritten.
    first, second = (s["data"]["hlsPrefix"] for s in started)
    assert first != second == prefix_of(job)
    await jobs.wait_events("transcoder.transcode.completed", job_id=job.id)
    await asyncio.sleep(0.5)
    assert len(await jobs.events("transcoder.transcode.completed", job_id=job.id)) == 1

    done = await jobs.follow(job.result["hlsMasterKey"])
    for key, text in done["playlists"].items():
        assert text.endswith("#EXT-X-ENDLIST\n"), key
    assert done["segments"][f"{prefix_of(job)}360p/index.m3u8"] == 4
    # Only what the final playlists list is in storage.
    listed = {job.result["hlsMasterKey"], *done["playlists"]}
    for key, text in done["playlists"].items():
        folder = key.rsplit("/", 1)[0]
        listed |= {
            f"{folder}/{line}" for line in text.splitlines() if line and not line.startswith("#")
        }
    media_keys = {
        k for k in jobs.keys(prefix_of(job)) if not k.startswith(f"{prefix_of(job)}thumbs/")
    }
    assert media_keys == listed
