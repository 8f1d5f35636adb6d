"""A transcode job against the bare FFmpeg command it is built on.

    uv run python bench/transcode.py [--seconds 60] [--preset veryfast] [--skip-per-rendition]

1. Makes a 1080p24 stereo source with ffmpeg (testsrc2, the "easy" source of
   /work/shared/reference/ffmpeg.md).
2. Runs the reference command of that document (one process, split + scale,
   -var_stream_map, VOD playlists) on the local file: the bare cost of the ladder.
3. Runs the original plan for comparison: one ffmpeg process per rendition, in a row.
4. Runs a real job: a throwaway database, a private JetStream stream, moto's S3
   server in a subprocess holding the source; the transcoder's API (outbox
   relay) and worker in this process. Times `catalog.episode.uploaded` →
   first playable playlist in storage, and → job ready.

Same preset, segment length (6 s) and ladder everywhere. The job also probes,
streams the source over HTTP, makes thumbnails and uploads everything: its
wall time divided by the reference's is what the pipeline costs on top of FFmpeg.
Everything it creates is removed at the end. Slow: about three times the
source's length times the encode speed; run it once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import nats
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import describe, drop_scratch, free_port, machine, process_cpu_seconds

from studio_common.app import running
from studio_common.db import Database
from studio_common.events import Envelope, EpisodeUploadedV1, subject_for
from studio_common.migrations import upgrade
from studio_transcoder.config import TranscoderSettings
from studio_transcoder.main import create_app
from studio_transcoder.models import Job
from studio_transcoder.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
SERVICE_DIR = ROOT / "services" / "transcoder"
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222")
LADDER = [(1920, 1080, 5000), (1280, 720, 2800), (854, 480, 1400)]


FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
S3_KEY, S3_SECRET = "bench", "bench-not-a-secret"  # moto accepts any pair


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)  # noqa: S603 - our own ffmpeg argv
    return time.perf_counter() - start


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (the ffmpeg runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_source(path: Path, seconds: int) -> None:
    timed(
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=24:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-ac", "2", str(path),
        ]
    )  # fmt: skip


def reference_command(src: Path, out: Path, preset: str) -> list[str]:
    """The one-process ladder of reference/ffmpeg.md, preset aside."""
    return [
        FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(src),
        "-filter_complex",
        "[0:v]split=3[v1080][v720in][v480in];[v720in]scale=w=1280:h=720[v720];[v480in]scale=w=854:h=480[v480]",
        "-map", "[v1080]", "-map", "0:a:0", "-map", "[v720]", "-map", "0:a:0", "-map", "[v480]", "-map", "0:a:0",
        "-c:v", "libx264", "-preset", preset, "-profile:v", "high",
        "-g", "48", "-keyint_min", "48", "-sc_threshold", "0",
        "-b:v:0", "5000k", "-maxrate:v:0", "5350k", "-bufsize:v:0", "7500k",
        "-b:v:1", "2800k", "-maxrate:v:1", "2996k", "-bufsize:v:1", "4200k",
        "-b:v:2", "1400k", "-maxrate:v:2", "1498k", "-bufsize:v:2", "2100k",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
        "-f", "hls", "-hls_time", "6", "-hls_playlist_type", "vod", "-hls_flags", "independent_segments",
        "-hls_segment_filename", f"{out}/%v/seg_%03d.ts", "-master_pl_name", "master.m3u8",
        "-var_stream_map", "v:0,a:0,name:1080p v:1,a:1,name:720p v:2,a:2,name:480p",
        f"{out}/%v/index.m3u8",
    ]  # fmt: skip


def per_rendition_commands(src: Path, out: Path, preset: str) -> list[list[str]]:
    commands = []
    for width, height, kbps in LADDER:
        folder = out / f"{height}p"
        folder.mkdir(parents=True, exist_ok=True)
        commands.append(
            [
                FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(src),
                "-vf", f"scale=w={width}:h={height}",
                "-c:v", "libx264", "-preset", preset, "-profile:v", "high",
                "-g", "48", "-keyint_min", "48", "-sc_threshold", "0",
                "-b:v", f"{kbps}k", "-maxrate", f"{round(kbps * 1.07)}k", "-bufsize", f"{round(kbps * 1.5)}k",
                "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
                "-f", "hls", "-hls_time", "6", "-hls_playlist_type", "vod",
                "-hls_segment_filename", f"{folder}/seg_%03d.ts", f"{folder}/index.m3u8",
            ]
        )  # fmt: skip
    return commands


async def run_job(src: Path, preset: str, work: Path) -> dict[str, Any]:
    token = uuid.uuid4().hex[:10]
    database = f"bench_transcode_{token}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    database_url = f"{base}/{database}"
    port = free_port()
    # moto in its own process, as S3 would be: its CPU is not this process's GIL.
    moto = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    settings = TranscoderSettings(
        database_url=database_url,
        nats_url=NATS_URL,
        event_subject_root=f"bench{token}",
        event_stream=f"BENCH{token.upper()}",
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        s3_bucket="bench",
        s3_access_key_id=S3_KEY,
        s3_secret_access_key=S3_SECRET,
        preset=preset,
        worker_metrics_port=0,
        work_dir=str(work),
        log_json=False,
        log_level="WARNING",
        # Outside development the API refuses to start without one.
        jwt_audience="studio-bench",
    )
    try:
        upgrade(SERVICE_DIR, database_url)
        s3 = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
        )
        for _ in range(100):
            with contextlib.suppress(Exception):
                s3.create_bucket(Bucket="bench")
                break
            await asyncio.sleep(0.1)
        s3.upload_file(str(src), "bench", "uploads/bench/source.mp4")
        event = EpisodeUploadedV1(
            episode_id=uuid.uuid4(),
            title_id=uuid.uuid4(),
            title_slug="bench",
            season_id=uuid.uuid4(),
            season_number=1,
            episode_number=1,
            source_key="uploads/bench/source.mp4",
        )
        db = Database.connect(database_url, pool_size=1)
        async with running(create_app(settings)):
            worker = Worker(settings)
            await worker.start()
            nc = await nats.connect(NATS_URL)
            # The job's own events, as catalog sees them: no polling of the
            # database, whose cost would land on the cores the job runs on.
            seen: dict[str, float] = {}
            done = asyncio.Event()

            async def on_event(msg: Any) -> None:
                kind = json.loads(msg.data).get("type", "")
                seen.setdefault(kind, time.perf_counter())
                if kind in ("transcoder.transcode.completed", "transcoder.transcode.failed"):
                    done.set()

            sub = await nc.subscribe(f"{settings.event_subject_root}.transcoder.>", cb=on_event)
            try:
                env = Envelope.wrap(event)
                cpu_before = (own_cpu(), children_cpu(), process_cpu_seconds(moto.pid))
                start = time.perf_counter()
                await nc.jetstream().publish(
                    subject_for(settings.event_subject_root, env.type),
                    env.model_dump_json(by_alias=True).encode(),
                    stream=settings.event_stream,
                )
                await asyncio.wait_for(done.wait(), timeout=3600)
                now = seen.get("transcoder.transcode.completed", time.perf_counter()) - start
                cpu_after = (own_cpu(), children_cpu(), process_cpu_seconds(moto.pid))
                async with db.transaction() as session:
                    job = (await session.scalars(select(Job))).one()
                assert job.status == "ready", job.error_reason
                # The master is in storage, in the attempt's folder (ADR 6), once
                # the job is playable.
                assert job.output_prefix, "a ready job names its folder"
                master = f"{job.output_prefix.rstrip('/')}/master.m3u8"
                s3.head_object(Bucket="bench", Key=master)
                playable = seen.get("transcoder.transcode.playable")
                return {
                    "job_wall": now,
                    # A source shorter than the first segments is playable when it is ready.
                    "to_playable": now if playable is None else playable - start,
                    "encode_seconds": job.encode_seconds,
                    "result": job.result,
                    # Everything on the machine's cores during the job besides
                    # Postgres and NATS: the API and worker (this process), the
                    # ffmpeg runs, and the S3 stand-in.
                    "cpu_s": {
                        "service_processes": round(cpu_after[0] - cpu_before[0], 2),
                        "ffmpeg": round(cpu_after[1] - cpu_before[1], 2),
                        "s3_stand_in": round(cpu_after[2] - cpu_before[2], 2),
                    },
                }
            finally:
                await sub.unsubscribe()
                await worker.stop(grace=0)
                await nc.close()
                await db.dispose()
    finally:
        moto.terminate()
        await moto.wait()
        await drop_scratch(PG_ADMIN, NATS_URL, database=database, stream=settings.event_stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--skip-per-rendition", action="store_true")
    parser.add_argument("--work-dir", default=None, help="where the source and outputs go")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-transcode-", dir=args.work_dir))
    try:
        src = work / "source.mp4"
        print(f"source: {args.seconds} s 1080p24 testsrc2 + stereo AAC", flush=True)
        make_source(src, args.seconds)

        reference_cpu: list[float] = []

        def reference_run() -> float:
            out = work / "reference"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            cpu = children_cpu()
            wall = timed(reference_command(src, out, args.preset))
            reference_cpu.append(children_cpu() - cpu)
            return wall

        # The reference runs before and after the job: on a shared machine the
        # mean of the two is a fairer base than either.
        before = reference_run()
        print(f"reference one-process ladder: {before:.1f} s", flush=True)
        per_rendition = None
        if not args.skip_per_rendition:
            per_out = work / "per-rendition"
            per_rendition = sum(timed(c) for c in per_rendition_commands(src, per_out, args.preset))
            print(f"one process per rendition: {per_rendition:.1f} s", flush=True)
        job = asyncio.run(run_job(src, args.preset, work))
        print(
            f"job: {job['job_wall']:.1f} s (ffmpeg run {job['encode_seconds']:.1f} s)", flush=True
        )
        after = reference_run()
        print(f"reference one-process ladder again: {after:.1f} s", flush=True)
        reference = (before + after) / 2
        lines = [
            f"machine: {describe(machine())}",
            f"source: {args.seconds} s 1080p24 testsrc2 + stereo AAC; preset {args.preset}; 6 s segments; 1080p/720p/480p",
            "",
            "| measurement | seconds | ratio |",
            "|---|---|---|",
            f"| reference command (one process, bare), mean of {before:.1f} and {after:.1f} | {reference:.1f} | 1.00 |",
        ]
        if per_rendition is not None:
            lines.append(
                f"| one process per rendition, in a row | {per_rendition:.1f} | {per_rendition / reference:.2f} |"
            )
        lines += [
            f"| job: episode.uploaded → ready | {job['job_wall']:.1f} | {job['job_wall'] / reference:.2f} x reference"
            + (
                f", {job['job_wall'] / per_rendition:.2f} x per-rendition |"
                if per_rendition
                else " |"
            ),
            f"| job: its ffmpeg run | {job['encode_seconds']:.1f} | {job['encode_seconds'] / reference:.2f} |",
            f"| job: episode.uploaded → first playable playlist | {job['to_playable']:.1f} | |",
            "",
            f"CPU seconds: reference ffmpeg {sum(reference_cpu) / len(reference_cpu):.1f}; during the job "
            + ", ".join(f"{k} {v:.1f}" for k, v in job["cpu_s"].items()),
        ]
        print("\n".join(lines))
        # One line for bench/run.py: the job against both baselines (targets 1.05 and 0.82).
        result = {
            "seconds": args.seconds,
            "preset": args.preset,
            "reference_s": round(reference, 2),
            "reference_runs_s": [round(before, 2), round(after, 2)],
            "per_rendition_s": round(per_rendition, 2) if per_rendition else None,
            "job_s": round(job["job_wall"], 2),
            "job_ffmpeg_s": round(job["encode_seconds"], 2),
            "to_playable_s": round(job["to_playable"], 2),
            "ratio_to_reference": round(job["job_wall"] / reference, 3),
            "ratio_to_per_rendition": (
                round(job["job_wall"] / per_rendition, 3) if per_rendition else None
            ),
            "reference_cpu_s": round(sum(reference_cpu) / len(reference_cpu), 2),
            "job_cpu_s": job["cpu_s"],
        }
        print("BENCH_RESULT " + json.dumps(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
