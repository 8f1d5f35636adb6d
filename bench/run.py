"""Every benchmark, each as a ratio against its limit measured in the same run.

    uv run python bench/run.py [--only transcode,playable,catalog,events,positions] [--quick]
    make bench

Runs each benchmark script in its own process (their output streams through),
collects the ``BENCH_RESULT`` line each prints (playback_positions.py prints a
JSON report), and ends with one Markdown table: measurement, value, limit,
ratio, how far from the target. ``--json PATH`` also writes everything.
Benchmarks print numbers; they never fail a build (the exit code is 0 unless
a benchmark crashed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import ROOT, describe, machine, parse_result, verdict

BENCH = ROOT / "bench"


def suite(quick: bool) -> dict[str, list[str]]:
    if quick:
        return {
            "transcode": ["transcode.py", "--seconds", "20"],
            "playable": ["time_to_playable.py", "--lengths", "20,60"],
            "catalog": ["catalog.py", "--titles", "20000", "--seconds", "4"],
            "events": ["events.py", "--seconds", "4"],
            "positions": ["playback_positions.py", "--seconds", "4"],
        }
    return {
        "transcode": ["transcode.py", "--seconds", "60"],
        "playable": ["time_to_playable.py", "--lengths", "60,600"],
        "catalog": ["catalog.py", "--titles", "100000"],
        "events": ["events.py"],
        "positions": ["playback_positions.py"],
    }


def run_one(name: str, argv: list[str]) -> dict[str, Any]:
    print(f"\n==> {name}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - our own scripts
        [sys.executable, str(BENCH / argv[0]), *argv[1:]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if not line.startswith("BENCH_RESULT "):
            sys.stdout.write(line)
            sys.stdout.flush()
    code = proc.wait()
    stdout = "".join(lines)
    result = parse_result(stdout)
    if result is None and name == "positions":
        # playback_positions.py prints its JSON report after the per-round lines.
        start = stdout.find("{\n")
        result = json.loads(stdout[start:]) if start >= 0 else None
    return {
        "exit_code": code,
        "wall_s": round(time.monotonic() - started, 1),
        "result": result,
    }


def row(
    name: str, value: float | None, unit: str, limit: float, *, higher_is_better: bool
) -> dict[str, Any]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {"measurement": name, "value": None, "unit": unit, "limit": limit}
    return {
        "measurement": name,
        "value": value,
        "unit": unit,
        "limit": limit,
        "ratio": round(value / limit, 2),
        "target": ("≥ " if higher_is_better else "≤ ") + f"{limit:g}{unit}",
        "verdict": verdict(value, limit, higher_is_better=higher_is_better),
    }


def summarize(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    tx = (results.get("transcode") or {}).get("result")
    if tx:
        rows.append(
            row(
                "transcode: job ÷ bare reference ffmpeg (60 s 1080p)",
                tx["ratio_to_reference"],
                "",
                1.05,
                higher_is_better=False,
            )
        )
        rows.append(
            row(
                "transcode: job ÷ one process per rendition",
                tx["ratio_to_per_rendition"],
                "",
                0.82,
                higher_is_better=False,
            )
        )
    tp = (results.get("playable") or {}).get("result")
    if tp:
        for label, run in tp["runs"].items():
            rows.append(
                row(
                    f"time to playable: POST episode → hls.js playing ({label} source)",
                    run["playing_s"],
                    " s",
                    15.0,
                    higher_is_better=False,
                )
            )
    cat = (results.get("catalog") or {}).get("result")
    if cat:
        for label, runs in cat["runs"].items():
            rows.append(
                row(
                    f"catalog {label}: service ÷ bare asyncpg+Starlette throughput",
                    runs["ratio"],
                    "",
                    0.6,
                    higher_is_better=True,
                )
            )
            conns = cat.get("connections", "N")
            rows.append(
                row(
                    f"catalog {label}: service p99 at {conns} connections (saturated)",
                    runs["service"]["p99_ms"],
                    " ms",
                    30.0,
                    higher_is_better=False,
                )
            )
            if "service_1" in runs:
                rows.append(
                    row(
                        f"catalog {label}: service p99, one connection",
                        runs["service_1"]["p99_ms"],
                        " ms",
                        30.0,
                        higher_is_better=False,
                    )
                )
    ev = (results.get("events") or {}).get("result")
    if ev:
        rows.append(
            row(
                "events: outbox commit → consumer handled, p99",
                ev["steady"]["p99_ms"],
                " ms",
                50.0,
                higher_is_better=False,
            )
        )
    pos = (results.get("positions") or {}).get("result")
    if pos:
        rounds = pos["rounds"]
        p99 = sorted(r["service"]["p99_ms"] for r in rounds)[len(rounds) // 2]
        rows.append(
            row(
                "playback positions: service ÷ bare SQL writes/s",
                pos["median_ratio"],
                "",
                0.5,
                higher_is_better=True,
            )
        )
        rows.append(
            row("playback positions: service p99", p99, " ms", 50.0, higher_is_better=False)
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| measurement | value | target | ratio to limit | from target |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("value") is None:
            out.append(f"| {r['measurement']} | n/a | | | not measured |")
            continue
        out.append(
            f"| {r['measurement']} | {r['value']:g}{r['unit']} | {r['target']} "
            f"| {r['ratio']:.2f} | {r['verdict']} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", help="comma-separated: transcode,playable,catalog,events,positions"
    )
    parser.add_argument("--quick", action="store_true", help="short runs, to try the harness")
    parser.add_argument("--json", type=Path, help="write the results here as well")
    args = parser.parse_args()
    plan = suite(args.quick)
    if args.only:
        wanted = args.only.split(",")
        plan = {k: v for k, v in plan.items() if k in wanted}
    before = machine()
    results = {name: run_one(name, argv) for name, argv in plan.items()}
    rows = summarize(results)
    report = {
        "machine": before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "summary": rows,
    }
    m = before
    print("\n==> summary")
    print(f"machine: {describe(m)}")
    print(
        f"load average before {m['load_average']}, after {report['load_average_after']}; "
        + ", ".join(f"{k} {v['wall_s']} s" for k, v in results.items())
    )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    crashed = [k for k, v in results.items() if v["exit_code"] not in (0, 1) or not v["result"]]
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
