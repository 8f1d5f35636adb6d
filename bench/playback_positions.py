"""Resume-position writes: the playback service against bare SQL.

    uv run python bench/playback_positions.py [--connections 32] [--seconds 10]

1. Creates a throwaway database, migrates the playback schema and seeds the
   episode projection (titles, episodes with durations).
2. Starts a JWKS issuer in this process and the real service in a subprocess
   (``python -m studio_playback serve``, uvicorn) on loopback.
3. Drives ``POST /api/playback`` from ``--connections`` keep-alive HTTP/1.1
   connections, one user each, for ``--seconds`` after a warm-up. Each user
   cycles over its episodes with an increasing ``sequence``; every
   ``--stale-every``-th request re-sends an older sequence, which must come
   back ``applied: false``.
4. Issues the same writes as bare SQL (the service's own statement) through an
   asyncpg pool of the same size: the ceiling.
5. After each run, checks every (user, episode) row against the last write
   the client saw applied: nothing lost, nothing reordered.

Everything is bounded (duration and a request cap) and on 127.0.0.1; the
database and the NATS stream it creates are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import (
    add_server_options,
    drop_scratch,
    free_port,
    process_cpu_seconds,
    read_response,
    running,
    wait_http_ok,
)

from studio_common.migrations import upgrade
from studio_common.testing.issuer import TestIssuer
from studio_playback.repository import CURRENT_POSITION_SQL, SAVE_POSITION_SQL

ROOT = Path(__file__).resolve().parents[1]
SERVICE_DIR = ROOT / "services" / "playback"
DURATION_SEC = 1440.0
WATCHED_FRACTION = 0.9


def processes_cpu_seconds(pids: list[int]) -> float:
    return sum(process_cpu_seconds(pid) for pid in pids)


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "postgres":
                    pids.append(int(entry))
    return pids


CpuProbe = Callable[[], float]


@dataclass
class UserLoad:
    """One virtual user: its episodes, next sequence and what it saw stored."""

    user_id: str
    token: str
    episodes: list[uuid.UUID]
    seq: int = 0
    sent: int = 0
    # episode -> (sequence, position) of the last write answered "applied".
    acknowledged: dict[uuid.UUID, tuple[int, float]] = field(default_factory=dict)

    def next_write(self, stale_every: int) -> tuple[uuid.UUID, float, int, bool]:
        """(episode, position, sequence, stale?) of this user's next request."""
        self.sent += 1
        episode = self.episodes[self.sent % len(self.episodes)]
        acked = self.acknowledged.get(episode)
        if stale_every and self.sent % stale_every == 0 and acked is not None and acked[0] > 1:
            # Delivered late: older than what is stored. Must not win.
            return episode, 1.0, acked[0] - 1, True
        self.seq += 1
        return episode, float(self.seq % 1300) + 0.25, self.seq, False


@dataclass
class Result:
    name: str
    requests: int = 0
    errors: int = 0
    unexpected: int = 0  # a fresh write not applied, or a stale one applied
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    # CPU seconds used during the measured window, by probe name.
    cpu: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 2) if lat else 0.0

        return {
            "name": self.name,
            "requests": self.requests,
            "writes_per_sec": round(self.requests / self.elapsed) if self.elapsed else 0,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else 0.0,
            "errors": self.errors,
            "unexpected": self.unexpected,
        } | {
            f"cpu_us_per_write_{name}": round(used / self.requests * 1e6) if self.requests else 0
            for name, used in self.cpu.items()
        }


Send = Callable[[UserLoad, uuid.UUID, float, int], Awaitable[tuple[bool, int]]]


async def drive(
    name: str,
    loads: list[UserLoad],
    make_sender: Callable[[UserLoad], Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]],
    args: argparse.Namespace,
    probes: dict[str, CpuProbe] | None = None,
) -> Result:
    """One coroutine per user, each with one request in flight at a time, for
    the command line's warmup, seconds, request cap and stale share."""
    warmup, seconds = args.warmup, args.seconds
    max_requests, stale_every = args.max_requests, args.stale_every
    result = Result(name)
    start_measuring = time.perf_counter() + warmup
    stop = start_measuring + seconds
    per_user_cap = max(1, max_requests // len(loads))

    async def sample_cpu() -> None:
        await asyncio.sleep(warmup)
        before = {k: probe() for k, probe in (probes or {}).items()}
        await asyncio.sleep(max(0.0, stop - time.perf_counter()))
        result.cpu = {k: probe() - before[k] for k, probe in (probes or {}).items()}

    sampler = asyncio.ensure_future(sample_cpu())

    async def user_loop(load: UserLoad) -> None:
        send, close = await make_sender(load)
        try:
            count = 0
            while count < per_user_cap:
                now = time.perf_counter()
                if now >= stop:
                    break
                episode, position, seq, stale = load.next_write(stale_every)
                t0 = time.perf_counter()
                try:
                    applied, stored_seq = await send(load, episode, position, seq)
                except Exception:
                    result.errors += 1
                    continue
                t1 = time.perf_counter()
                if applied == stale:
                    result.unexpected += 1
                elif stale and stored_seq != load.acknowledged[episode][0]:
                    # Refused, but it must report the newer write that is stored.
                    result.unexpected += 1
                if applied:
                    load.acknowledged[episode] = (seq, position)
                if t0 >= start_measuring:
                    result.requests += 1
                    result.latencies.append(t1 - t0)
                    count += 1
        finally:
            await close()

    await asyncio.gather(*(user_loop(load) for load in loads))
    result.elapsed = min(time.perf_counter(), stop) - start_measuring
    await sampler
    return result


# --- the two ways of writing ------------------------------------------------


def http_sender_factory(port: int) -> Callable[[UserLoad], Awaitable[tuple[Send, Any]]]:
    """A minimal keep-alive HTTP/1.1 client: a load generator that costs little CPU."""

    async def make(load: UserLoad) -> tuple[Send, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            "POST /api/playback HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            f"Authorization: Bearer {load.token}\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: "
        ).encode()

        async def send(load: UserLoad, episode: uuid.UUID, position: float, seq: int) -> Any:
            body = (
                f'{{"episodeId":"{episode}","positionSec":{position},"sequence":{seq}}}'
            ).encode()
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            status, payload = await read_response(reader)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
            data = json.loads(payload)
            return bool(data["applied"]), int(data["sequence"])

        async def close() -> None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

        return send, close

    return make


def sql_sender_factory(pool: asyncpg.Pool) -> Callable[[UserLoad], Awaitable[tuple[Send, Any]]]:
    async def make(load: UserLoad) -> tuple[Send, Any]:
        async def send(load: UserLoad, episode: uuid.UUID, position: float, seq: int) -> Any:
            row = await pool.fetchrow(
                SAVE_POSITION_SQL, load.user_id, episode, position, seq, WATCHED_FRACTION
            )
            if row is None or row["title_id"] is None:
                raise RuntimeError("unknown episode")
            if row["seq"] is None:  # refused: read the stored write, as the service does
                current = await pool.fetchrow(CURRENT_POSITION_SQL, load.user_id, episode)
                return False, None if current is None else current["seq"]
            return True, row["seq"]

        async def close() -> None:
            return None

        return send, close

    return make


# --- set-up, verification, the service process ------------------------------


async def seed(conn: asyncpg.Connection, titles: int, episodes_per_title: int) -> list[uuid.UUID]:
    await conn.execute(
        "TRUNCATE playback.titles, playback.episodes, playback.positions, "
        "playback.favorites, playback.tombstones, playback.deleted_users"
    )
    episodes: list[uuid.UUID] = []
    for t in range(titles):
        title_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO playback.titles (id, slug, name, event_at) VALUES ($1, $2, $3, now())",
            title_id,
            f"bench-{t}",
            f"Bench {t}",
        )
        rows = [(uuid.uuid4(), title_id, 1, n + 1, DURATION_SEC) for n in range(episodes_per_title)]
        await conn.executemany(
            "INSERT INTO playback.episodes "
            "(id, title_id, season_number, episode_number, duration_sec, event_at, duration_at) "
            "VALUES ($1, $2, $3, $4, $5, now(), now())",
            rows,
        )
        episodes += [r[0] for r in rows]
    return episodes


async def verify(conn: asyncpg.Connection, loads: list[UserLoad]) -> dict[str, int]:
    """Every row must hold the last write its client saw applied."""
    rows = await conn.fetch(
        "SELECT user_id, episode_id, seq, position_sec FROM playback.positions "
        "WHERE user_id = ANY($1::text[])",
        [load.user_id for load in loads],
    )
    stored = {(r["user_id"], r["episode_id"]): (r["seq"], r["position_sec"]) for r in rows}
    expected = {
        (load.user_id, episode): ack for load in loads for episode, ack in load.acknowledged.items()
    }
    lost = sum(1 for key in expected if key not in stored)
    reordered = sum(1 for key, ack in expected.items() if key in stored and stored[key] != ack)
    unexpected_rows = sum(1 for key in stored if key not in expected)
    return {
        "rows": len(stored),
        "lost": lost,
        "reordered": reordered,
        "unexpected_rows": unexpected_rows,
    }


def make_loads(
    issuer: TestIssuer, episodes: list[uuid.UUID], users: int, per_user: int
) -> list[UserLoad]:
    loads = []
    for i in range(users):
        user_id = f"bench_user_{i}_{uuid.uuid4().hex[:6]}"
        mine = [episodes[(i * per_user + k) % len(episodes)] for k in range(per_user)]
        loads.append(UserLoad(user_id, issuer.mint(sub=user_id, ttl=3600), mine))
    return loads


@contextlib.contextmanager
def service_process(env: dict[str, str], port: int, workers: int, log_path: Path) -> Any:
    cmd = [
        sys.executable,
        "-m",
        "studio_playback",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with running(cmd, env, log_path) as proc:
        yield proc


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


async def run_service(
    args: argparse.Namespace,
    name: str,
    env: dict[str, str],
    loads: list[UserLoad],
) -> Result:
    port = free_port()
    with service_process(env, port, args.workers, Path(args.service_log)) as proc:
        await wait_http_ok(port, "/readyz", proc, within=30)
        service_pids = [proc.pid, *children_of(proc.pid)]
        return await drive(
            name,
            loads,
            http_sender_factory(port),
            args,
            probes={
                "service": lambda: processes_cpu_seconds(service_pids),
                "postgres": lambda: processes_cpu_seconds(postgres_pids()),
                "load_generator": lambda: process_cpu_seconds(os.getpid()),
            },
        )


async def run_bare(args: argparse.Namespace, db_url: str, loads: list[UserLoad]) -> Result:
    async def no_reset(_: asyncpg.Connection) -> None:
        return None

    pool = await asyncpg.create_pool(db_url, min_size=args.pool, max_size=args.pool, reset=no_reset)
    try:
        return await drive(
            "bare asyncpg",
            loads,
            sql_sender_factory(pool),
            args,
            probes={
                "postgres": lambda: processes_cpu_seconds(postgres_pids()),
                "load_generator": lambda: process_cpu_seconds(os.getpid()),
            },
        )
    finally:
        await pool.close()


async def main(args: argparse.Namespace) -> int:
    admin_url = args.database_admin_url
    db_name = f"bench_playback_{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex[:8]
    subject_root, stream = f"bench{token}", f"BENCH{token.upper()}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{db_name}"')
    pg = {
        "version": await conn.fetchval("SHOW server_version"),
        "synchronous_commit": await conn.fetchval("SHOW synchronous_commit"),
    }
    await conn.close()
    db_url = f"{admin_url.rsplit('/', 1)[0]}/{db_name}"
    report: dict[str, Any] = {
        "machine": machine(),
        "postgres": pg,
        "settings": {
            k: getattr(args, k)
            for k in (
                "connections",
                "seconds",
                "warmup",
                "rounds",
                "pool",
                "workers",
                "stale_every",
                "log_level",
                "batch_size",
                "service_env",
            )
        },
        "rounds": [],
    }
    try:
        upgrade(SERVICE_DIR, db_url.replace("postgresql://", "postgresql+asyncpg://", 1))
        conn = await asyncpg.connect(db_url)
        episodes = await seed(conn, args.titles, args.episodes_per_title)
        issuer = TestIssuer()
        with issuer.serve():
            env = {
                "PLAYBACK_DATABASE_URL": db_url.replace(
                    "postgresql://", "postgresql+asyncpg://", 1
                ),
                "PLAYBACK_NATS_URL": args.nats_url,
                "PLAYBACK_EVENT_SUBJECT_ROOT": subject_root,
                "PLAYBACK_EVENT_STREAM": stream,
                "PLAYBACK_JWKS_URL": issuer.jwks_url,
                "PLAYBACK_JWT_ISSUER": issuer.issuer,
                "PLAYBACK_JWT_AUDIENCE": issuer.audience,
                "PLAYBACK_POSITIONS_POOL_SIZE": str(args.pool),
                "PLAYBACK_POSITIONS_BATCH_SIZE": str(args.batch_size),
                "PLAYBACK_LOG_LEVEL": args.log_level,
                **dict(item.split("=", 1) for item in args.service_env),
            }
            for _ in range(args.rounds):
                runs: dict[str, Any] = {}

                def fresh() -> list[UserLoad]:
                    return make_loads(issuer, episodes, args.connections, args.episodes_per_user)

                loads = fresh()
                result = await run_service(args, "service", env, loads)
                runs["service"] = result.summary() | await verify(conn, loads)
                if args.unbatched:
                    loads = fresh()
                    result = await run_service(
                        args,
                        "service, batching off",
                        env | {"PLAYBACK_POSITIONS_BATCH_SIZE": "1"},
                        loads,
                    )
                    runs["service_unbatched"] = result.summary() | await verify(conn, loads)
                loads = fresh()
                result = await run_bare(args, db_url, loads)
                runs["bare"] = result.summary() | await verify(conn, loads)
                bare_rate = runs["bare"]["writes_per_sec"] or 1
                runs["ratio"] = round(runs["service"]["writes_per_sec"] / bare_rate, 2)
                if args.unbatched:
                    runs["ratio_unbatched"] = round(
                        runs["service_unbatched"]["writes_per_sec"] / bare_rate, 2
                    )
                report["rounds"].append(runs)
                print(json.dumps(runs), file=sys.stderr)
        await conn.close()
    finally:
        await drop_scratch(admin_url, args.nats_url, database=db_name, stream=stream)

    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    rounds = report["rounds"]
    ratios = sorted(r["ratio"] for r in rounds)
    report["median_ratio"] = ratios[len(ratios) // 2]
    clean = all(
        r[phase][k] == 0
        for r in rounds
        for phase in ("service", "service_unbatched", "bare")
        if phase in r
        for k in ("errors", "unexpected", "lost", "reordered", "unexpected_rows")
    )
    p99 = sorted(r["service"]["p99_ms"] for r in rounds)[len(rounds) // 2]
    report["target_met"] = report["median_ratio"] >= 0.5 and p99 < 50 and clean
    print(json.dumps(report, indent=2))
    return 0 if report["target_met"] else 1


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--connections", type=int, default=32, help="concurrent users (one connection each)"
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured duration of each run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--max-requests", type=int, default=500_000, help="cap per run")
    p.add_argument("--pool", type=int, default=10, help="database connections, both runs")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--stale-every", type=int, default=20, help="every Nth write is out of date")
    p.add_argument("--titles", type=int, default=20)
    p.add_argument("--episodes-per-title", type=int, default=12)
    p.add_argument("--episodes-per-user", type=int, default=4)
    p.add_argument("--log-level", default="INFO", help="the service's log level")
    p.add_argument("--batch-size", type=int, default=128, help="PLAYBACK_POSITIONS_BATCH_SIZE")
    p.add_argument(
        "--unbatched", action="store_true", help="also run the service with batching off"
    )
    p.add_argument("--rounds", type=int, default=1, help="alternate the runs this many times")
    p.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the service (repeatable), e.g. OTEL_TRACES_SAMPLER=...",
    )
    p.add_argument("--service-log", default="/tmp/bench-playback-service.log")  # noqa: S108
    add_server_options(p)
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
