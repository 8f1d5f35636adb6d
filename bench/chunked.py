"""Chunked transcoding against one pass: CPU, and ready time with one and two workers.

    uv run python bench/chunked.py [--seconds 600] [--preset veryfast] [--chunk-segments 10]

1. Makes a 1080p24 stereo source with ffmpeg (testsrc2 + sine, as bench/transcode.py).
2. Plans it as the transcoder does (ffprobe, the ladder, the chunk plan) and
   builds the transcoder's own ffmpeg command lines: the one-pass ladder
   command (+ the sprite sheets), and the parts of the chunked job: every
   video chunk, the audio, the images (+ the sprite sheets).
3. Runs, each on pinned cores (``taskset``), timing wall clock and the CPU
   seconds of every ffmpeg (``wait4``):
   - one pass on one core (today's worker on one core),
   - the parts on one worker pinned to one core, in the order workers take them,
   - the parts on two workers, each pinned to its own core, taking the next
     part from one queue.
4. Reports chunked CPU ÷ one-pass CPU (target ≤ 1.05), ready time with two
   workers ÷ one (target ≤ 0.55), and the model for N workers: the parts'
   measured times scheduled greedily on N workers, the fixed cost per chunk,
   and where adding workers stops helping.

Only ffmpeg is measured: storage, the queue and the database are the same per
part as per one-pass job (a handful of messages and rows) and are left out.
Subtitle extraction and the audio fingerprint cost the same in both and are
left out too. Slow: about four times the encode time of the source.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import describe, emit, machine, verdict

from studio_transcoder.config import TranscoderSettings
from studio_transcoder.media.chunks import (
    ChunkSpec,
    audio_command,
    chunk_command,
    images_command,
    plan_chunks,
)
from studio_transcoder.media.command import OutputLayout, ladder_command, sprite_command
from studio_transcoder.media.ladder import LadderPlan, plan_ladder
from studio_transcoder.media.probe import SourceInfo, probe

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
TASKSET = shutil.which("taskset") or "taskset"


def make_source(path: Path, seconds: int) -> None:
    subprocess.run(  # noqa: S603 - our own ffmpeg argv
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=24:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-ac", "2", str(path),
        ],
        check=True,
    )  # fmt: skip


class Part:
    """One ffmpeg run (or two in a row: images then its sprite sheets)."""

    def __init__(self, name: str, commands: list[list[str]], layout: OutputLayout) -> None:
        self.name = name
        self.commands = commands
        self.layout = layout
        self.wall = 0.0
        self.cpu = 0.0


def run_pinned(argv: list[str], core: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command pinned to ``core``."""
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 - our own ffmpeg argv
        [TASKSET, "-c", core, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]}... exited {proc.returncode}: {err.decode()[-500:]}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def fresh(root: Path, name: str, plan: LadderPlan) -> OutputLayout:
    layout = OutputLayout(root / name)
    shutil.rmtree(layout.root, ignore_errors=True)
    layout.create()
    for r in [*plan.video, *plan.audio]:
        layout.rendition(r.name).mkdir(parents=True, exist_ok=True)
    return layout


def parts_for(
    settings: TranscoderSettings,
    plan: LadderPlan,
    info: SourceInfo,
    source: str,
    chunks: list[ChunkSpec],
    root: Path,
) -> list[Part]:
    """In the order the job enqueues them: the head (chunk 0 and the audio, run
    one after the other here: the same CPU as side by side) first."""
    parts = []
    for chunk in chunks:
        layout = fresh(root, f"chunk-{chunk.index}", plan)
        argv = chunk_command(settings, plan, source, info.video.index, chunk, layout)
        parts.append(Part(f"chunk {chunk.index}", [argv], layout))
    parts[0].name = "head"
    parts[0].commands.append(audio_command(settings, plan, source, parts[0].layout))
    layout = fresh(root, "images", plan)
    images = [
        images_command(settings, plan, source, info.video.index, layout),
        sprite_command(settings, plan, layout),
    ]
    parts.insert(1, Part("images", images, layout))
    return parts


def run_workers(parts: list[Part], cores: list[str]) -> float:
    """Every part on len(cores) workers, each pinned to its core; wall seconds to the last."""
    queue = collections.deque(parts)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(core: str) -> None:
        while True:
            with lock:
                if not queue:
                    return
                part = queue.popleft()
            part.wall = part.cpu = 0.0
            try:
                for argv in part.commands:
                    wall, cpu = run_pinned(argv, core)
                    part.wall += wall
                    part.cpu += cpu
            except BaseException as exc:
                errors.append(exc)
                return

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in cores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def schedule(durations: list[float], workers: int) -> float:
    """Greedy list scheduling in queue order: each part to the first free worker."""
    free = [0.0] * workers
    for d in durations:
        i = min(range(workers), key=free.__getitem__)
        free[i] += d
    return max(free)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--chunk-segments", type=int, default=10)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--source", type=Path, default=None, help="a source made by an earlier run (kept)"
    )
    args = parser.parse_args()

    m = machine()
    print(describe(m))
    settings = TranscoderSettings(
        chunking=True,
        preset=args.preset,
        chunk_segments=args.chunk_segments,
        chunk_min_seconds=1,
    )
    with tempfile.TemporaryDirectory(prefix="bench-chunked-", dir=args.work) as tmp:
        root = Path(tmp)
        source = args.source or root / "source.mp4"
        if args.source is None:
            t0 = time.perf_counter()
            make_source(source, args.seconds)
            print(f"source: {args.seconds} s 1080p24 made in {time.perf_counter() - t0:.1f} s")
        info = asyncio.run(probe(settings.ffprobe_path, str(source), label="source", redactions={}))
        plan = plan_ladder(info, settings)
        chunks = plan_chunks(info.duration, settings)
        print(
            f"plan: {', '.join(v.name for v in plan.video)} + {len(plan.audio)} audio; "
            f"{len(chunks)} chunks of {settings.chunk_segments} x {settings.segment_seconds:g} s"
        )

        load_before = os.getloadavg()
        layout = fresh(root, "one-pass", plan)
        one = Part(
            "one pass",
            [
                ladder_command(settings, plan, str(source), info.video.index, layout),
                sprite_command(settings, plan, layout),
            ],
            layout,
        )
        one_wall = run_workers([one], ["0"])
        print(f"one pass, 1 core: {one_wall:.1f} s wall, {one.cpu:.1f} CPU s")
        shutil.rmtree(layout.root, ignore_errors=True)

        parts = parts_for(settings, plan, info, str(source), chunks, root / "w1")
        w1_wall = run_workers(parts, ["0"])
        w1_cpu = sum(p.cpu for p in parts)
        durations = [p.wall for p in parts]
        print(f"chunked, 1 worker on 1 core: {w1_wall:.1f} s wall, {w1_cpu:.1f} CPU s")
        for p in parts:
            print(f"  {p.name:10s} {p.wall:7.1f} s wall {p.cpu:7.1f} CPU s")
        shutil.rmtree(root / "w1", ignore_errors=True)

        parts2 = parts_for(settings, plan, info, str(source), chunks, root / "w2")
        w2_wall = run_workers(parts2, ["0", "1"])
        w2_cpu = sum(p.cpu for p in parts2)
        print(f"chunked, 2 workers on 2 cores: {w2_wall:.1f} s wall, {w2_cpu:.1f} CPU s")
        load_after = os.getloadavg()

    cpu_ratio = w1_cpu / one.cpu
    scale_ratio = w2_wall / w1_wall
    video = [p for p in parts if p.name.startswith("chunk") or p.name == "head"]
    side = [p for p in parts if p not in video]
    # What the split costs: the chunked job's CPU above one pass, per chunk.
    fixed = (w1_cpu - one.cpu) / max(1, len(video))
    model: dict[str, Any] = {}
    # The same on CPU seconds: what the wall times would be on idle cores,
    # where a pinned single-threaded-core run takes about its CPU time.
    cpu_model: dict[str, Any] = {}
    cpu_durations = [p.cpu for p in parts]
    for n in (1, 2, 3, 4, 6, 8, 12, 16, 24):
        model[str(n)] = round(schedule(durations, n), 1)
        cpu_model[str(n)] = round(schedule(cpu_durations, n), 1)
    idle_scale = schedule(cpu_durations, 2) / schedule(cpu_durations, 1)
    longest = max(durations)
    # Past this many workers the longest part (the audio of the whole episode,
    # or one chunk) is the ready time: more workers wait on it.
    knee = next(
        (n for n in range(1, len(parts) + 1) if schedule(durations, n) <= longest * 1.05),
        len(parts),
    )
    print(
        f"CPU chunked ÷ one pass: {cpu_ratio:.3f} (target ≤ 1.05: "
        f"{verdict(cpu_ratio, 1.05, higher_is_better=False)})"
    )
    print(
        f"ready 2 workers ÷ 1 worker: {scale_ratio:.3f} (target ≤ 0.55: "
        f"{verdict(scale_ratio, 0.55, higher_is_better=False)})"
    )
    print(
        f"model: {len(video)} chunks (mean {sum(p.wall for p in video) / len(video):.1f} s), "
        f"side parts {', '.join(f'{p.name} {p.wall:.1f} s' for p in side)}; "
        f"fixed CPU per chunk {fixed:.2f} s; predicted ready time by workers {model}; "
        f"stops scaling at {knee} workers (longest part {longest:.1f} s)"
    )
    print(
        f"on CPU seconds (idle cores): ready time by workers {cpu_model}; "
        f"2 workers ÷ 1: {idle_scale:.3f}"
    )
    print(f"load average before {load_before}, after {load_after}")
    emit(
        {
            "bench": "chunked",
            "seconds": args.seconds,
            "preset": args.preset,
            "chunks": len(video),
            "one_pass_wall_1core": round(one_wall, 2),
            "one_pass_cpu": round(one.cpu, 2),
            "chunked_wall_1worker": round(w1_wall, 2),
            "chunked_cpu": round(w1_cpu, 2),
            "chunked_wall_2workers": round(w2_wall, 2),
            "cpu_ratio": round(cpu_ratio, 4),
            "scaling_ratio": round(scale_ratio, 4),
            "fixed_cpu_per_chunk": round(fixed, 3),
            "parts": {p.name: [round(p.wall, 2), round(p.cpu, 2)] for p in parts},
            "model_ready_seconds": model,
            "model_ready_cpu_seconds": cpu_model,
            "model_scaling_ratio_idle": round(idle_scale, 4),
            "stops_scaling_at_workers": knee,
            "load_before": load_before,
            "load_after": load_after,
            "machine": m,
        }
    )


if __name__ == "__main__":
    main()
