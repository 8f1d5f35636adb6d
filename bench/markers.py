"""Openings and endings: accuracy, fingerprinting cost, detection time.

    uv run python bench/markers.py [--quick] [--only-cost] [--json out.json]

1. Accuracy: generated seasons of the issue's shape (services/transcoder/tests/
   seasons.py): 24-minute AAC episodes sharing a 60-90 s opening and ending,
   cold opens of 0-3 minutes, previews of 0-30 s, one episode per season
   without an opening; a 12-episode season and three smaller ones. Every
   boundary's error against the truth; markers where there are none.
2. Detection time for the 12-episode season (66 pairs, heads and tails): CPU
   and wall time of ``detect_season``, best and median of 7 runs.
3. Fingerprinting cost against a transcode's: the CPU of fingerprinting a
   24-minute 1080p source with 48 kHz stereo AAC (both windows, as the job
   runs them), against the CPU of the one-process ladder (bench/transcode.py's
   reference command, the transcoder's default preset veryfast) on a 20 s
   1080p24 clip of the same kind, scaled to 24 minutes.

CPU times (user + system of this process's children, or of this process for
detection) are what the ratios use: they move far less than wall times when
the machine is shared. ``--quick`` makes the three small seasons only and a
smaller ladder clip, for a check that the script works; ``--only-cost`` runs
part 3 alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The season generator the marker tests use.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "transcoder" / "tests"))

from bench_util import describe, machine
from seasons import Episode, SeasonSpec, make_season
from transcode import reference_command

from studio_transcoder.media.detection import EpisodePrint, Marker, detect_season
from studio_transcoder.media.fingerprint import Fingerprint, fingerprint, fingerprint_file

TOLERANCE = 1.0
EPISODE_SECONDS = 1440.0
SEASONS = [
    SeasonSpec("twelve", episodes=12, opening=90.0, ending=80.5, seed=12),
    SeasonSpec("long-op", episodes=6, opening=89.5, ending=75.25, seed=1),
    SeasonSpec("short-op", episodes=5, opening=61.0, ending=88.75, seed=2),
    SeasonSpec("mid", episodes=5, opening=75.0, ending=62.0, seed=3),
]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, timeout=3600)  # noqa: S603 (our own ffmpeg commands)


def detect(
    season: list[tuple[Episode, Fingerprint]],
) -> list[tuple[Episode, list[Marker]]]:
    ids = [uuid.uuid4() for _ in season]
    found = detect_season([EpisodePrint(i, fp) for i, (_, fp) in zip(ids, season, strict=True)])
    return [(e, found[i]) for i, (e, _) in zip(ids, season, strict=True)]


def accuracy(seasons: dict[str, list[tuple[Episode, Fingerprint]]]) -> dict[str, Any]:
    errors: list[float] = []
    missing = phantom = 0
    per_kind: dict[str, list[float]] = {}
    for season in seasons.values():
        for episode, markers in detect(season):
            got = {m.kind: (m.start, m.end) for m in markers}
            for kind, truth in (("opening", episode.opening), ("ending", episode.ending)):
                if truth is None:
                    phantom += kind in got
                    continue
                if kind not in got:
                    missing += 2
                    continue
                for n, side in enumerate(("start", "end")):
                    err = got[kind][n] - truth[n]
                    errors.append(abs(err))
                    per_kind.setdefault(f"{kind} {side}", []).append(err)
    total = len(errors) + missing
    within = sum(e <= TOLERANCE for e in errors)
    return {
        "boundaries": total,
        "within_1s": within,
        "share_within_1s": round(within / total, 4) if total else None,
        "missing_boundaries": missing,
        "markers_where_there_are_none": phantom,
        "max_error_s": round(max(errors), 3) if errors else None,
        "mean_abs_error_s": round(statistics.mean(errors), 3) if errors else None,
        "p95_abs_error_s": round(sorted(errors)[int(0.95 * (len(errors) - 1))], 3)
        if errors
        else None,
        "signed_error_by_boundary_s": {
            k: {
                "mean": round(statistics.mean(v), 3),
                "min": round(min(v), 3),
                "max": round(max(v), 3),
            }
            for k, v in sorted(per_kind.items())
        },
    }


def detection_time(season: list[tuple[Episode, Fingerprint]], rounds: int = 7) -> dict[str, Any]:
    prints = [EpisodePrint(uuid.uuid4(), fp) for _, fp in season]
    cpu, wall = [], []
    for _ in range(rounds):
        c, w = time.process_time(), time.perf_counter()
        detect_season(prints)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return {
        "episodes": len(prints),
        "cpu_s_best": round(min(cpu), 3),
        "cpu_s_median": round(statistics.median(cpu), 3),
        "wall_s_best": round(min(wall), 3),
        "wall_s_median": round(statistics.median(wall), 3),
    }


def synthesize(path: Path, video: str, seconds: int, *, still: bool = False) -> None:
    """A lavfi video with 48 kHz stereo AAC, as a master has; ``still`` tunes x264
    for a still picture."""
    tune = ["-tune", "stillimage"] if still else []
    run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", video,
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-filter_complex", "[1]aformat=channel_layouts=stereo[a]",
            "-map", "0:v", "-map", "[a]",
            "-c:v", "libx264", "-preset", "ultrafast", *tune, "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", str(path),
        ]
    )  # fmt: skip


def fingerprint_cost(work: Path, clip_seconds: int) -> dict[str, Any]:
    # A 24-minute source: 1080p video (a still picture at 1 fps, cheap to make;
    # the fingerprint demuxes video packets but never decodes them, so what a
    # real master adds is I/O, not CPU) and 48 kHz stereo AAC, as a master has.
    source = work / "episode.mp4"
    synthesize(
        source,
        f"color=c=navy:size=1920x1080:rate=1:duration={EPISODE_SECONDS}",
        EPISODE_SECONDS,
        still=True,
    )
    fp_cpu, fp_wall = [], []
    for _ in range(3):
        c, w = children_cpu(), time.perf_counter()
        # Stream 1: the audio (stream 0 is the video), as the job passes it.
        fp = asyncio.run(fingerprint("ffmpeg", str(source), 1, EPISODE_SECONDS))
        fp_cpu.append(children_cpu() - c)
        fp_wall.append(time.perf_counter() - w)
    # The ladder on a clip of the kind bench/transcode.py uses (testsrc2, stereo AAC).
    clip = work / "clip.mp4"
    synthesize(clip, f"testsrc2=size=1920x1080:rate=24:duration={clip_seconds}", clip_seconds)
    out = work / "ladder"
    for name in ("1080p", "720p", "480p"):
        (out / name).mkdir(parents=True, exist_ok=True)
    c, w = children_cpu(), time.perf_counter()
    run(reference_command(clip, out, "veryfast"))
    ladder_cpu, ladder_wall = children_cpu() - c, time.perf_counter() - w
    ladder_cpu_per_second = ladder_cpu / clip_seconds
    episode_ladder_cpu = ladder_cpu_per_second * EPISODE_SECONDS
    best = min(fp_cpu)
    return {
        "episode_seconds": EPISODE_SECONDS,
        "fingerprint_items": [len(fp.head), len(fp.tail)],
        "fingerprint_cpu_s_best": round(best, 3),
        "fingerprint_cpu_s_runs": [round(x, 3) for x in fp_cpu],
        "fingerprint_wall_s_runs": [round(x, 3) for x in fp_wall],
        "ladder_clip_seconds": clip_seconds,
        "ladder_clip_cpu_s": round(ladder_cpu, 2),
        "ladder_clip_wall_s": round(ladder_wall, 2),
        "ladder_cpu_per_source_second": round(ladder_cpu_per_second, 3),
        "ladder_cpu_s_for_the_episode": round(episode_ladder_cpu, 1),
        "fingerprint_share_of_job_cpu_percent": round(
            100 * max(fp_cpu) / (episode_ladder_cpu + max(fp_cpu)), 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--only-cost", action="store_true", help="the fingerprinting cost alone (no seasons)"
    )
    args = parser.parse_args()
    specs = [] if args.only_cost else SEASONS[1:] if args.quick else SEASONS
    work = Path(tempfile.mkdtemp(prefix="bench-markers-"))
    result: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()}
    try:
        made: dict[str, list[tuple[Episode, Fingerprint]]] = {}
        started = children_cpu()
        for n, spec in enumerate(specs):
            episodes = make_season(work / spec.name, spec, first_block=10 + 100 * n)
            made[spec.name] = [
                (e, fingerprint_file("ffmpeg", e.path, e.duration)) for e in episodes
            ]
            print(f"season {spec.name}: {len(episodes)} episodes made", flush=True)
        result["seasons"] = {
            s.name: {
                "episodes": s.episodes,
                "opening_s": s.opening,
                "ending_s": s.ending,
                "cold_opens_s": [lay.cold_open for lay in s.layouts],
                "previews_s": [lay.preview for lay in s.layouts],
            }
            for s in specs
        }
        result["generation_cpu_s"] = round(children_cpu() - started, 1)
        if made:
            result["accuracy"] = accuracy(made)
            print(json.dumps(result["accuracy"], indent=2), flush=True)
            biggest = max(made.values(), key=len)
            result["detection"] = detection_time(biggest)
            print(json.dumps(result["detection"], indent=2), flush=True)
        result["fingerprint_cost"] = fingerprint_cost(work, 8 if args.quick else 20)
        print(json.dumps(result["fingerprint_cost"], indent=2), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = os.getloadavg()
    print(describe(result["machine"]))
    print(f"load average before {result['load_before']}, after {result['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
