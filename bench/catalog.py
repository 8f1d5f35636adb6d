"""Catalog reads: the service against bare asyncpg behind a minimal Starlette route.

    uv run python bench/catalog.py [--titles 100000] [--seconds 10] [--connections 8]
        [--rounds 4] [--with-route]

1. A throwaway database with the catalog schema (its migrations) and
   ``--titles`` titles (bench/catalog_names.py: 3 to 6 names each in romaji,
   English, kanji and kana, real anime naming patterns, forty real titles;
   two genres out of 12, a short synopsis) loaded by COPY with their search
   documents, then VACUUM ANALYZE.
2. The real service (``python -m studio_catalog serve``, one uvicorn worker, its
   default settings and logging) and ``bench/catalog_bare.py`` (same SQL on an
   asyncpg pool of the same size, one uvicorn worker) on loopback.
3. For each query, both servers taking turns (``--rounds`` turns each, in ABBA
   order, so that other work on a shared machine falls on both alike):
   ``--connections`` keep-alive clients for ``--seconds`` in all after a
   warm-up (throughput, and latency when saturated), then one client for half
   as long (latency without queueing). Each server's own CPU per request
   (user + system of its process) is reported too: a measure of the service's
   overhead that other work on the machine hardly moves. ``--with-route``
   adds the service with its list fast path off (every request through
   FastAPI's routing) as a third server. Queries:
   ``?genre=<g>&page=3`` (cycling over the genres) and, for each query class of
   issue 19, ``?q=`` cycling over a few queries of it: a broad romaji word, two
   words, a typo, English, a kanji substring, kana.
4. Relevance: the (query → title) pairs of catalog_names.RELEVANCE against the
   service, top five answers each.

Targets (issue 19): p99 ≤ 25 ms with one client and ≤ 80 ms with 8 for each
class, service ÷ bare throughput ≥ 0.8; the expected title first for ≥ 90 % of
the pairs and in the top five for all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import (
    ROOT,
    LoadResult,
    add_server_options,
    create_scratch,
    drop_scratch,
    emit,
    free_port,
    http_get_load,
    machine,
    process_cpu_seconds,
    running,
    verdict,
    wait_http_ok,
)
from catalog_names import COLUMNS, GENRES, QUERY_CLASSES, RELEVANCE, rows

from studio_catalog.names import lexicon_words
from studio_common.migrations import upgrade

# Issue 19's targets.
P99_ONE_CLIENT_MS = 25.0
P99_LOADED_MS = 80.0
RATIO = 0.8


async def seed(conn: asyncpg.Connection, n: int) -> None:
    """``n`` titles with their names and search documents (catalog_names), by COPY."""
    batch: list[tuple[Any, ...]] = []
    words: set[str] = set()
    for row in rows(n):
        batch.append(row)
        words.update(lexicon_words(row[2], json.loads(row[10])))
        if len(batch) == 5_000:
            await conn.copy_records_to_table(
                "titles", schema_name="catalog", records=batch, columns=COLUMNS
            )
            batch = []
    if batch:
        await conn.copy_records_to_table(
            "titles", schema_name="catalog", records=batch, columns=COLUMNS
        )
    # What the service adds on each title write, for typo corrections.
    await conn.executemany(
        "INSERT INTO catalog.search_words (word) VALUES ($1) ON CONFLICT DO NOTHING",
        [(w,) for w in sorted(words)],
    )


async def relevance(port: int) -> dict[str, Any]:
    """Where each pair's expected title lands in the first five answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    misses: list[dict[str, Any]] = []
    first = 0
    try:
        for q, slug in RELEVANCE:
            path = f"/api/titles?q={quote(q)}&pageSize=5"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            found = [t["slug"] for t in json.loads(await reader.readexactly(length))["items"]]
            if found[:1] == [slug]:
                first += 1
            else:
                misses.append({"q": q, "expected": slug, "top5": found})
    finally:
        writer.close()
    n = len(RELEVANCE)
    in_top5 = n - sum(1 for m in misses if m["expected"] not in m["top5"])
    return {
        "pairs": n,
        "first": first,
        "first_pct": round(100 * first / n, 1),
        "top5": in_top5,
        "verdict_first": verdict(first / n, 0.9, higher_is_better=True),
        "verdict_top5": verdict(in_top5 / n, 1.0, higher_is_better=True),
        "misses": misses,
    }


async def taking_turns(
    ports: dict[str, int],
    pids: dict[str, int],
    paths: Callable[[int], bytes],
    *,
    connections: int,
    seconds: float,
    warmup: float,
    rounds: int,
) -> dict[str, tuple[LoadResult, dict[str, Any]]]:
    """Each server loaded for ``seconds`` in all, in ``rounds`` turns (ABBA order),
    so that a burst of other work on the machine falls on both alike rather than
    on whichever ran at that moment. Pooled results, each turn's requests/s, and
    the server process's own CPU (user + system) per request over its turns:
    unlike requests/s, hardly moved by what else runs on the machine."""
    pooled = {name: LoadResult() for name in ports}
    per_round: dict[str, list[float]] = {name: [] for name in ports}
    cpu = dict.fromkeys(ports, 0.0)
    served = dict.fromkeys(ports, 0)
    names = list(ports)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            before = process_cpu_seconds(pids[name])
            turn = await http_get_load(
                ports[name],
                paths,
                connections=connections,
                seconds=seconds / rounds,
                # New connections each turn: a short warm-up after the first.
                warmup=warmup if r == 0 else min(warmup, 0.5),
            )
            # The warm-up's requests count too: the CPU is read around the whole turn.
            cpu[name] += process_cpu_seconds(pids[name]) - before
            served[name] += turn.sent
            total = pooled[name]
            total.latencies += turn.latencies
            total.errors += turn.errors
            total.seconds += turn.seconds
            for status, n in turn.statuses.items():
                total.statuses[status] = total.statuses.get(status, 0) + n
            per_round[name].append(round(len(turn.latencies) / turn.seconds, 1))
    return {
        name: (
            pooled[name],
            {
                "rounds_rps": per_round[name],
                "cpu_ms_per_request": round(1000 * cpu[name] / max(served[name], 1), 3),
            },
        )
        for name in ports
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    admin_url = args.database_admin_url
    token = uuid.uuid4().hex[:8]
    db_name = f"bench_catalog_{token}"
    stream = f"BENCHCAT{token.upper()}"
    db_url = await create_scratch(admin_url, db_name)
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
        await seed(conn, args.titles)
        for table in ("titles", "title_keys", "search_words"):
            await conn.execute(f"VACUUM ANALYZE catalog.{table}")
        await conn.close()

        service_port, bare_port = free_port(), free_port()
        service_env = {
            "CATALOG_DATABASE_URL": sa_url,
            "CATALOG_NATS_URL": args.nats_url,
            "CATALOG_EVENT_SUBJECT_ROOT": f"benchcat{token}",
            "CATALOG_EVENT_STREAM": stream,
            "CATALOG_LOG_LEVEL": args.log_level,
            # Production refuses to start without a token audience; the bench
            # sends no tokens (public reads only).
            "STUDIO_ENVIRONMENT": "development",
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
        classes = {"genre_page_3": genre_paths} | {
            f"q_{label}": [f"/api/titles?q={quote(q)}&pageSize=20".encode() for q in queries]
            for label, queries in QUERY_CLASSES.items()
        }
        logs = Path(args.log_dir)
        route_port = free_port()
        with contextlib.ExitStack() as servers:
            svc = servers.enter_context(
                running(service_argv, service_env, logs / "bench-catalog-service.log")
            )
            bare = servers.enter_context(
                running(bare_argv, {"BARE_DATABASE_URL": db_url}, logs / "bench-catalog-bare.log")
            )
            await wait_http_ok(service_port, "/readyz", svc)
            await wait_http_ok(bare_port, "/readyz", bare)
            ports = {"service": service_port, "bare": bare_port}
            pids = {"service": svc.pid, "bare": bare.pid}
            if args.with_route:
                # The same service answering every request through FastAPI's
                # routing (its list fast path off): what the fast path saves.
                route_argv = [*service_argv[:-1], str(route_port)]
                route = servers.enter_context(
                    running(
                        route_argv,
                        service_env | {"CATALOG_LIST_FAST_PATH": "false"},
                        logs / "bench-catalog-route.log",
                    )
                )
                await wait_http_ok(route_port, "/readyz", route)
                ports["route"] = route_port
                pids["route"] = route.pid
            report["relevance"] = await relevance(service_port)
            print(f"relevance: {report['relevance']}", flush=True)
            for label, paths in classes.items():
                runs: dict[str, Any] = {}
                # Throughput and latency when saturated, then latency without
                # queueing (one client at a time); the two servers take turns.
                for suffix, connections, seconds, warmup in (
                    ("", args.connections, args.seconds, args.warmup),
                    ("_1", 1, args.seconds / 2, 0.5),
                ):
                    results = await taking_turns(
                        ports,
                        pids,
                        lambda i, p=paths: p[i % len(p)],
                        connections=connections,
                        seconds=seconds,
                        warmup=warmup,
                        rounds=args.rounds,
                    )
                    for name, (result, extra) in results.items():
                        runs[f"{name}{suffix}"] = result.summary() | extra
                        print(f"{label} {name}{suffix}: {runs[f'{name}{suffix}']}", flush=True)
                ratio = runs["service"]["rps"] / max(runs["bare"]["rps"], 1e-9)
                runs["ratio"] = round(ratio, 2)
                if "route" in runs:
                    runs["ratio_route"] = round(
                        runs["route"]["rps"] / max(runs["bare"]["rps"], 1e-9), 2
                    )
                runs["verdict_ratio"] = verdict(ratio, RATIO, higher_is_better=True)
                runs["verdict_p99_1"] = verdict(
                    runs["service_1"]["p99_ms"], P99_ONE_CLIENT_MS, higher_is_better=False
                )
                runs["verdict_p99_loaded"] = verdict(
                    runs["service"]["p99_ms"], P99_LOADED_MS, higher_is_better=False
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
    p.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="turns each server's load is split into, alternating with the other's",
    )
    p.add_argument(
        "--with-route",
        action="store_true",
        help="also the service with its list fast path off (CATALOG_LIST_FAST_PATH=false)",
    )
    p.add_argument("--log-level", default="INFO", help="the service's log level")
    p.add_argument("--log-dir", default="/tmp")  # noqa: S108
    add_server_options(p)
    return p.parse_args()


if __name__ == "__main__":
    emit(asyncio.run(run(parse_args())))
