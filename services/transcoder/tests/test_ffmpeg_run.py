"""FfmpegRun on a real ffmpeg: paused, resumed, reniced, stopped while paused."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from studio_transcoder.media.process import FfmpegRun


def state(pid: int) -> str:
    """The process's state letter in /proc (R, S, T for stopped, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def frames_done(path: Path) -> int:
    text = path.read_text() if path.exists() else ""
    done = [line for line in text.splitlines() if line.startswith("frame=")]
    return int(done[-1].split("=")[1]) if done else 0


async def nothing(_: float) -> None:
    return None


def endless(tmp_path: Path) -> tuple[FfmpegRun, Path]:
    """A run that encodes until stopped, its frame count in a progress file."""
    progress = tmp_path / "progress.txt"
    argv = [
        *("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"),
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-threads", "2"),
        *("-progress", str(progress), "-stats_period", "0.1", "-f", "null", "-"),
    ]
    return FfmpegRun(argv, on_progress=nothing), progress


async def wait_for(check, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_paused_run_makes_no_progress_until_resumed(tmp_path: Path) -> None:
    run, progress = endless(tmp_path)
    await run.start()
    assert run.proc is not None
    try:
        await wait_for(lambda: frames_done(progress) > 0)
        run.pause()
        await wait_for(lambda: state(run.proc.pid) == "T")
        held = frames_done(progress)
        await asyncio.sleep(0.5)
        assert frames_done(progress) == held
        run.resume()
        await wait_for(lambda: frames_done(progress) > held)
    finally:
        await run.stop()


async def test_a_run_stopped_while_paused_ends_on_sigterm(tmp_path: Path) -> None:
    run, progress = endless(tmp_path)
    await run.start()
    assert run.proc is not None
    await wait_for(lambda: frames_done(progress) > 0)
    run.pause()
    await wait_for(lambda: state(run.proc.pid) == "T")
    # A stopped process keeps SIGTERM pending: without SIGCONT first, stop()
    # would wait out its grace and kill.
    await run.stop(grace=30)
    assert run.proc.returncode is not None
    assert run.proc.returncode != -9


async def test_renice_lowers_every_thread(tmp_path: Path) -> None:
    run, progress = endless(tmp_path)
    await run.start()
    assert run.proc is not None
    try:
        await wait_for(lambda: frames_done(progress) > 0)
        own = os.getpriority(os.PRIO_PROCESS, 0)
        run.renice(7)
        threads = [int(t) for t in os.listdir(f"/proc/{run.proc.pid}/task")]
        assert len(threads) > 1
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in threads} == {min(19, own + 7)}
    finally:
        await run.stop()
