"""A failed attempt cleans up after itself, and a failure of the job counts as an attempt."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from studio_common.testing.jetstream import wait_until


async def test_a_failed_attempt_leaves_no_partial_hls(
    start_worker, jobs, media, settings, processes
):
    source = media.video("six-seconds.mp4", size="640x360", seconds=6)
    await start_worker(input_read_rate=1.0, max_attempts=1)
    event = await jobs.submit(source)

    # Segments are in storage (the episode is playable) when ffmpeg dies.
    playable = await wait_until(lambda: _playable(jobs, event.episode_id), within=30, interval=0.1)
    prefix = playable.output_prefix
    assert jobs.keys(prefix)
    # The encode's ffmpeg: the one whose arguments name the job's temp folder.
    marker = f"{Path(settings.work_dir).name}/studio-transcode-{os.getpid()}-{playable.id.hex[:8]}-"
    pids = processes(marker, program="ffmpeg")
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    job = await jobs.wait_for(event.episode_id, "ready", "failed", within=30)
    # Storage answered all along: the job's own failure, counted.
    assert (job.status, job.error_code, job.attempts) == ("failed", "ffmpeg_killed", 1)
    assert jobs.keys(prefix) == []
    failed = await jobs.wait_events("transcoder.transcode.failed", job_id=job.id)
    assert failed[0]["data"]["hlsPrefix"] == prefix


async def _playable(jobs, episode_id):
    job = await jobs.job(episode_id)
    return job if job is not None and job.playable and job.status == "processing" else None
