"""Private HLS through the gateway (ADR 8) against the storage's own presigned GET.

    uv run python bench/segments.py [--seconds 5] [--rounds 3] [--connections 16 64] [--segment-mb 2.16]

Starts, on loopback: moto's S3 server (the local S3 stand-in) in a subprocess
holding one segment and one media playlist; media (`python -m studio_media
serve`, one worker, a scratch database and a private JetStream stream); nginx
with the gateway config generated from the route table. Then, for the segment
and the playlist, at each number of keep-alive clients: GETs through the
gateway with a playback token (media checks it, nginx fetches from storage)
and GETs of the same object's presigned URL straight from the S3 stand-in.
The three paths take turns, `--rounds` times; the round with the median
requests/s is reported. Reports requests/s, bytes/s, p50/p99, the CPU seconds of each process per GB
served and the 3 Mbit/s viewers one core of the serving processes sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import boto3
from bench_util import (
    ROOT,
    LoadResult,
    add_server_options,
    drop_scratch,
    emit,
    free_port,
    machine,
    process_cpu_seconds,
    running,
    verdict,
)

from studio_common.migrations import upgrade
from studio_common.testing.issuer import TestIssuer
from studio_devstack.gateway import GatewayOptions, find_nginx, nginx_command, write_nginx_conf
from studio_devstack.routes import ROUTES_RELATIVE_PATH, load_route_table
from studio_media import tokens

MEDIA_DIR = ROOT / "services" / "media"
SIGNING_KEY = "bench-signing-key-" + "b" * 32
S3_KEY, S3_SECRET = "bench", "bench-not-a-secret"
BUCKET = "bench-segments"
VIEWER_BITS_PER_SECOND = 3_000_000


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live children (nginx's workers, uvicorn's)."""
    total = process_cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += process_cpu_seconds(int(child))
    return total


async def wait_port(port: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port} after {within} s")


async def get_load(
    port: int, path: bytes, *, connections: int, seconds: float, warmup: float
) -> LoadResult:
    """bench_util.http_get_load, but a client whose server closes the connection
    after an answer (the S3 stand-in speaks HTTP/1.0) opens a new one, as ab -k does."""
    result = LoadResult()
    measure_from = time.monotonic() + warmup
    stop_at = measure_from + seconds
    request = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (t0 := time.monotonic()) < stop_at:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length, close = 0, head.startswith(b"HTTP/1.0")
                for line in head.split(b"\r\n"):
                    name = line.split(b":", 1)[0].lower()
                    if name == b"content-length":
                        length = int(line.split(b":", 1)[1])
                    elif name == b"connection":
                        close = b"close" in line.lower()
                if length:
                    await reader.readexactly(length)
                if t0 >= measure_from:
                    result.latencies.append(time.monotonic() - t0)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    result.errors += status != 200
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    result.seconds = seconds
    return result


async def register(dsn: str, episode: uuid.UUID, folder: str) -> None:
    """The folder as media's projection holds it once the transcoder said so: what
    its streaming path (the one before ADR 8) looks up on every request."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO media.episode_assets (episode_id, state, hls_master_key, event_at)"
            " VALUES ($1, 'ready', $2, now())",
            episode,
            folder + "master.m3u8",
        )
        await conn.execute(
            "INSERT INTO media.hls_folders (prefix, episode_id) VALUES ($1, $2)", folder, episode
        )
    finally:
        await conn.close()


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median requests/s, and every round's requests/s beside it."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return {**ordered[len(ordered) // 2], "rounds_rps": [r["rps"] for r in runs]}


async def measure(
    name: str,
    port: int,
    path: str,
    size: int,
    connections: int,
    args: argparse.Namespace,
    pids: dict[str, int],
) -> dict[str, Any]:
    before = {k: tree_cpu(p) for k, p in pids.items()}
    before["load_generator"] = process_cpu_seconds(os.getpid())
    t0 = time.monotonic()
    result = await get_load(
        port, path.encode(), connections=connections, seconds=args.seconds, warmup=args.warmup
    )
    wall = time.monotonic() - t0
    after = {k: tree_cpu(p) for k, p in pids.items()}
    after["load_generator"] = process_cpu_seconds(os.getpid())
    summary = result.summary()
    # CPU was sampled over warmup + measured seconds: scale the bytes the same way.
    total_bytes = summary["rps"] * size * wall
    gb = total_bytes / 1e9 or float("nan")
    cpu = {k: round(after[k] - before[k], 2) for k in after}
    serving = sum(v for k, v in cpu.items() if k != "load_generator")
    bytes_per_s = summary["rps"] * size
    viewers = bytes_per_s * 8 / VIEWER_BITS_PER_SECOND
    cores = serving / wall if wall else float("nan")
    row = {
        "path": name,
        "connections": connections,
        **summary,
        "mbytes_per_s": round(bytes_per_s / 1e6, 1),
        "cpu_seconds": cpu,
        "cpu_seconds_per_gb": {k: round(v / gb, 2) for k, v in cpu.items()},
        "viewers_per_core": round(viewers / cores) if cores else None,
    }
    print(
        f"{name:<28} c={connections:<3} {summary['rps']:>8.1f} req/s "
        f"{row['mbytes_per_s']:>7.1f} MB/s p50 {summary['p50_ms']:>7.1f} ms "
        f"p99 {summary['p99_ms']:>7.1f} ms errors {summary['errors']} "
        f"cpu/GB {row['cpu_seconds_per_gb']} viewers/core {row['viewers_per_core']}",
        flush=True,
    )
    return row


async def main(args: argparse.Namespace) -> int:
    nginx = find_nginx()
    if nginx is None:
        print("nginx is not installed", file=sys.stderr)
        return 2
    suffix = uuid.uuid4().hex[:8]
    database, stream = f"bench_segments_{suffix}", f"BENCH_SEGMENTS_{suffix.upper()}"
    admin = await asyncpg.connect(args.database_admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    db_url = args.database_admin_url.rsplit("/", 1)[0].replace(
        "postgresql://", "postgresql+asyncpg://", 1
    )
    db_url = f"{db_url}/{database}"
    runtime = Path(tempfile.mkdtemp(prefix="bench-segments-"))
    s3_port, media_port, gateway_port = free_port(), free_port(), free_port()
    endpoint = f"http://127.0.0.1:{s3_port}"
    episode, version = uuid.uuid4(), uuid.uuid4().hex
    folder = f"hls/{episode}/{version}/"
    segment = os.urandom(int(args.segment_mb * 1_000_000))
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        + "".join(f"#EXTINF:6.000,\nseg{i}.ts\n" for i in range(240))
        + "#EXT-X-ENDLIST\n"
    ).encode()
    report: dict[str, Any] = {"machine": machine(), "rows": []}
    try:
        upgrade(MEDIA_DIR, db_url)
        await register(args.database_admin_url.rsplit("/", 1)[0] + f"/{database}", episode, folder)
        issuer = TestIssuer()
        with (
            running(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)]
            ) as moto,
            issuer.serve(),
        ):
            await wait_port(s3_port)
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=S3_KEY,
                aws_secret_access_key=S3_SECRET,
            )
            s3.create_bucket(Bucket=BUCKET)
            objects = {
                "segment": ("720p/seg0.ts", segment, "video/mp2t", "public, max-age=86400"),
                "playlist": (
                    "720p/index.m3u8",
                    playlist,
                    "application/vnd.apple.mpegurl",
                    "public, max-age=300",
                ),
            }
            for key, body, content_type, cache in objects.values():
                s3.put_object(
                    Bucket=BUCKET,
                    Key=folder + key,
                    Body=body,
                    ContentType=content_type,
                    CacheControl=cache,
                )
            env = {
                "STUDIO_ENVIRONMENT": "development",
                "MEDIA_DATABASE_URL": db_url,
                "MEDIA_NATS_URL": args.nats_url,
                "MEDIA_EVENT_SUBJECT_ROOT": f"bench{suffix}",
                "MEDIA_EVENT_STREAM": stream,
                "MEDIA_JWKS_URL": issuer.jwks_url,
                "MEDIA_JWT_ISSUER": issuer.issuer,
                "MEDIA_JWT_AUDIENCE": issuer.audience,
                "MEDIA_S3_ENDPOINT_URL": endpoint,
                "MEDIA_S3_BUCKET": BUCKET,
                "MEDIA_S3_ACCESS_KEY_ID": S3_KEY,
                "MEDIA_S3_SECRET_ACCESS_KEY": S3_SECRET,
                "MEDIA_PLAYBACK_SIGNING_KEY": SIGNING_KEY,
                "MEDIA_PUBLIC_BASE_URL": f"http://127.0.0.1:{gateway_port}",
                "MEDIA_UPLOAD_CLEANUP_INTERVAL_SECONDS": "0",
                "MEDIA_HLS_SWEEP_INTERVAL_SECONDS": "0",
                "MEDIA_LOG_LEVEL": "WARNING",
            }
            media_argv = [sys.executable, "-m", "studio_media", "serve", "--port", str(media_port)]
            table = load_route_table(ROOT / ROUTES_RELATIVE_PATH)
            ports = {service.name: free_port() for service in table.services}
            ports["media"] = media_port
            options = GatewayOptions(runtime_dir=runtime / "gateway", listen_port=gateway_port)
            write_nginx_conf(table.with_ports(ports), options)
            # Access logs off: the S3 stand-in logs nothing either.
            conf = options.runtime_dir / "nginx.conf"
            conf.write_text(
                conf.read_text().replace(
                    f"access_log {options.runtime_dir / 'access.log'} studio_json;",
                    "access_log off;",
                )
            )
            with (
                running(media_argv, env) as media,
                running(nginx_command(nginx, options.runtime_dir)) as gateway,
            ):
                await wait_port(media_port)
                await wait_port(gateway_port)
                token = tokens.sign(SIGNING_KEY.encode(), episode, int(time.time()) + 3600)
                pids = {"nginx": gateway.pid, "media": media.pid, "s3": moto.pid}
                for kind, (key, body, _, _) in objects.items():
                    presigned = s3.generate_presigned_url(
                        "get_object",
                        Params={"Bucket": BUCKET, "Key": folder + key},
                        ExpiresIn=3600,
                    ).removeprefix(endpoint)
                    gateway_path = f"/hls/{token}/{episode}/{version}/{key}"
                    for connections in args.connections:
                        runs: list[list[dict[str, Any]]] = [[], [], []]
                        # Alternating rounds: a shared machine's load drifts alike for all.
                        for _ in range(args.rounds):
                            for i, (name, port, path) in enumerate(
                                (
                                    (f"{kind}: gateway (token)", gateway_port, gateway_path),
                                    (f"{kind}: S3 presigned GET", s3_port, presigned),
                                    # Before ADR 8: media reads and streams the file itself.
                                    (f"{kind}: media streaming", media_port, gateway_path),
                                )
                            ):
                                runs[i].append(
                                    await measure(
                                        name, port, path, len(body), connections, args, pids
                                    )
                                )
                        for path_runs in runs:
                            report["rows"].append(median_run(path_runs))
    finally:
        await drop_scratch(args.database_admin_url, args.nats_url, database=database, stream=stream)
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    rows = report["rows"]
    for i in range(0, len(rows), 3):
        gw, s3row = rows[i], rows[i + 1]
        ratio = gw["rps"] / s3row["rps"] if s3row["rps"] else float("nan")
        p99 = gw["p99_ms"] / s3row["p99_ms"] if s3row["p99_ms"] else float("nan")
        for row in rows[i : i + 3]:
            print(
                f"median {row['path']:<28} c={row['connections']:<3} {row['rps']:>7.1f} req/s "
                f"{row['mbytes_per_s']:>6.1f} MB/s p50 {row['p50_ms']:>7.1f} p99 "
                f"{row['p99_ms']:>7.1f} ms cpu/GB {row['cpu_seconds_per_gb']} "
                f"viewers/core {row['viewers_per_core']} rounds {row['rounds_rps']}"
            )
        print(
            f"{gw['path']} c={gw['connections']}: {ratio:.2f} x the presigned GET's req/s "
            f"(target >= 0.8: {verdict(ratio, 0.8, higher_is_better=True)}), "
            f"p99 {p99:.2f} x (target <= 2: {verdict(p99, 2, higher_is_better=False)})"
        )
        gw["vs_presigned"] = {"rps": round(ratio, 2), "p99": round(p99, 2)}
    emit({"benchmark": "segments", **report})
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    p.add_argument("--segment-mb", type=float, default=2.16)
    add_server_options(p)
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
