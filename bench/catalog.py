"""Catalog reads: the service against bare asyncpg behind a minimal Starlette route.

    uv run python bench/catalog.py [--titles 100000] [--seconds 10] [--connections 8]

1. A throwaway database with the catalog schema (its migrations) and
   ``--titles`` titles made by one INSERT ... SELECT (names of two words out of
   60, two genres out of 12, a short synopsis), then ANALYZE.
2. The real service (``python -m studio_catalog serve``, one uvicorn worker, its
   default settings and logging) and ``bench/catalog_bare.py`` (same SQL on an
   asyncpg pool of the same size, one uvicorn worker) on loopback.
3. For each query, each server in turn: ``--connections`` keep-alive clients
   for ``--seconds`` after a warm-up (throughput, and latency when saturated),
   then one client for half as long (latency without queueing). Queries:
   ``?genre=<g>&page=3`` (cycling over the genres) and ``?q=<words>`` (whole
   words, prefixes and a typo).

Target (issue 8): service ÷ bare throughput ≥ 0.6, and the service's p99 < 30 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import (
    ROOT,
    add_server_options,
    drop_scratch,
    emit,
    free_port,
    http_get_load,
    machine,
    verdict,
    wait_http_ok,
)

from studio_common.migrations import upgrade

WORDS = [
    "star",
    "light",
    "crimson",
    "blade",
    "moon",
    "river",
    "shadow",
    "garden",
    "iron",
    "heart",
    "silent",
    "storm",
    "golden",
    "dragon",
    "paper",
    "lantern",
    "spirit",
    "summer",
    "winter",
    "echo",
    "neon",
    "city",
    "frozen",
    "flame",
    "hidden",
    "forest",
    "last",
    "signal",
    "broken",
    "wing",
    "ocean",
    "dream",
    "steel",
    "rose",
    "velvet",
    "night",
    "quiet",
    "thunder",
    "azure",
    "sky",
    "wild",
    "bell",
    "crystal",
    "path",
    "ember",
    "tide",
    "lunar",
    "sword",
    "ghost",
    "harbor",
    "autumn",
    "tale",
    "shining",
    "island",
    "distant",
    "song",
]
GENRES = [
    "action", "adventure", "comedy", "drama", "fantasy", "horror",
    "mecha", "mystery", "romance", "sci-fi", "slice-of-life", "sports",
]  # fmt: skip
TYPES = ["series", "movie", "ova", "ona", "special"]
QUERIES = ["starlight", "crimson blade", "moon riv", "starlite", "shadow garden", "neon"]


def seed_sql(n: int) -> str:
    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    genres = "ARRAY[" + ",".join(f"'{g}'" for g in GENRES) + "]"
    types = "ARRAY[" + ",".join(f"'{t}'" for t in TYPES) + "]"
    w = len(WORDS)
    # Only constants of this file go into the statement.
    return f"""
    INSERT INTO catalog.titles
        (id, slug, name, type, year, synopsis, genres, languages, platforms, rating_avg)
    SELECT gen_random_uuid(),
           'title-' || g,
           initcap(({words})[1 + (g * 7) % {w}]) || initcap(({words})[1 + (g * 13 + 5) % {w}])
               || ' ' || initcap(({words})[1 + (g * 31 + 11) % {w}]) || ' ' || g,
           ({types})[1 + g % 5],
           1960 + g % 65,
           'A tale of ' || ({words})[1 + (g * 17 + 3) % {w}] || ' and '
               || ({words})[1 + (g * 19 + 7) % {w}] || ' in the ' || ({words})[1 + (g * 23) % {w}],
           ARRAY[({genres})[1 + g % 12], ({genres})[1 + (g / 12 + 5) % 12]]::varchar[],
           ARRAY['ja', 'en']::varchar[],
           ARRAY['tv']::varchar[],
           (g % 100) / 10.0
    FROM generate_series(1, {n}) AS g
    """  # noqa: S608


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    admin_url = args.database_admin_url
    token = uuid.uuid4().hex[:8]
    db_name = f"bench_catalog_{token}"
    stream = f"BENCHCAT{token.upper()}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{db_name}"')
    await conn.close()
    db_url = f"{admin_url.rsplit('/', 1)[0]}/{db_name}"
    sa_url = db_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    report: dict[str, Any] = {
        "machine": machine(),
        "titles": args.titles,
        "connections": args.connections,
        "runs": {},
    }
    try:
        upgrade(ROOT / "services" / "catalog", sa_url)
        conn = await asyncpg.connect(db_url)
        print(f"seeding {args.titles} titles", flush=True)
        await conn.execute(seed_sql(args.titles))
        await conn.execute("ANALYZE catalog.titles")
        await conn.close()

        service_port, bare_port = free_port(), free_port()
        service_env = {
            "CATALOG_DATABASE_URL": sa_url,
            "CATALOG_NATS_URL": args.nats_url,
            "CATALOG_EVENT_SUBJECT_ROOT": f"benchcat{token}",
            "CATALOG_EVENT_STREAM": stream,
            "CATALOG_LOG_LEVEL": args.log_level,
        }
        service_argv = [
            sys.executable,
            "-m",
            "studio_catalog",
            "serve",
            "--port",
            str(service_port),
        ]
        bare_argv = [
            *(sys.executable, "-m", "uvicorn", "catalog_bare:app"),
            *("--port", str(bare_port), "--log-level", "warning", "--no-access-log"),
            *("--app-dir", str(ROOT / "bench")),
        ]
        genre_paths = [f"/api/titles?genre={g}&page=3&pageSize=20".encode() for g in GENRES]
        query_paths = [f"/api/titles?q={q.replace(' ', '+')}&pageSize=20".encode() for q in QUERIES]
        logs = Path(args.log_dir)
        with (
            server(service_argv, service_env, logs / "bench-catalog-service.log") as svc,
            server(
                bare_argv, {"BARE_DATABASE_URL": db_url}, logs / "bench-catalog-bare.log"
            ) as bare,
        ):
            await wait_http_ok(service_port, "/readyz", svc)
            await wait_http_ok(bare_port, "/readyz", bare)
            for label, paths in (("genre_page_3", genre_paths), ("search_q", query_paths)):
                runs: dict[str, Any] = {}
                for name, port in (("service", service_port), ("bare", bare_port)):
                    result = await http_get_load(
                        port,
                        lambda i, p=paths: p[i % len(p)],
                        connections=args.connections,
                        seconds=args.seconds,
                        warmup=args.warmup,
                    )
                    runs[name] = result.summary()
                    print(f"{label} {name}: {runs[name]}", flush=True)
                # Latency without queueing: one client at a time.
                for name, port in (("service", service_port), ("bare", bare_port)):
                    result = await http_get_load(
                        port,
                        lambda i, p=paths: p[i % len(p)],
                        connections=1,
                        seconds=args.seconds / 2,
                        warmup=0.5,
                    )
                    runs[f"{name}_1"] = result.summary()
                    print(f"{label} {name}, one connection: {runs[f'{name}_1']}", flush=True)
                ratio = runs["service"]["rps"] / max(runs["bare"]["rps"], 1e-9)
                runs["ratio"] = round(ratio, 2)
                runs["verdict_ratio"] = verdict(ratio, 0.6, higher_is_better=True)
                runs["verdict_p99"] = verdict(
                    runs["service"]["p99_ms"], 30.0, higher_is_better=False
                )
                report["runs"][label] = runs
    finally:
        await drop_scratch(admin_url, args.nats_url, database=db_name, stream=stream)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--titles", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--log-level", default="INFO", help="the service's log level")
    p.add_argument("--log-dir", default="/tmp")  # noqa: S108
    add_server_options(p)
    return p.parse_args()


if __name__ == "__main__":
    emit(asyncio.run(run(parse_args())))
