"""What the benchmarks share: a keep-alive HTTP load generator, the machine, results.

Each benchmark script prints human lines and, last, one line
``BENCH_RESULT {json}`` that ``bench/run.py`` collects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import nats
from nats.js.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "BENCH_RESULT "


def emit(result: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            data: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return data
    return None


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The Postgres (an admin URL, to create scratch databases) and NATS to use."""
    parser.add_argument(
        "--database-admin-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--nats-url", default=os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222")
    )


async def create_scratch(admin_url: str, database: str) -> str:
    """Create a run's scratch database on the admin URL's server; its URL."""
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{database}"')
    await conn.close()
    return f"{admin_url.rsplit('/', 1)[0]}/{database}"


async def drop_scratch(admin_url: str, nats_url: str, *, database: str, stream: str) -> None:
    """Remove a run's scratch database and JetStream stream, whatever state they are in."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()
    with contextlib.suppress(Exception):
        nc = await nats.connect(nats_url)
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream)
        await nc.close()


@contextlib.contextmanager
def running(
    argv: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process under measurement, from the repository root, with ``env`` over ours.

    Its output goes to ``log`` (or nowhere); it is stopped as a deployment stops
    it, SIGTERM, and killed only if it is still there after 20 s.
    """
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter, moto, nginx
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            cwd=ROOT,
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


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    mem = None
    with contextlib.suppress(OSError, ValueError):
        mem = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    psql, ffmpeg_bin = shutil.which("psql"), shutil.which("ffmpeg")
    pg = ""
    if psql:
        pg = subprocess.run(  # noqa: S603 - fixed argv
            [psql, "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    ffmpeg = subprocess.run(  # noqa: S603 - fixed argv
        [ffmpeg_bin or "/usr/bin/ffmpeg", "-version"], capture_output=True, text=True, check=False
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": pg or None,
        "ffmpeg": ffmpeg.stdout.split("\n")[0] if ffmpeg.returncode == 0 else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def describe(m: dict[str, Any]) -> str:
    """One line for a report: what :func:`machine` found."""
    return (
        f"{m['cpus']} cores ({m['cpu']}), {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, PostgreSQL {m['postgres']}, {m['ffmpeg']}"
    )


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    # Every answer read, the warm-up's included (for CPU per request).
    sent: int = 0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "requests": len(lat),
            "errors": self.errors,
            "rps": round(len(lat) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of the next HTTP/1.1 response on a keep-alive
    connection; the services frame every body with Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"),
        0,
    )
    return int(head[9:12]), await reader.readexactly(length)


async def http_get_load(
    port: int,
    paths: Callable[[int], bytes],
    *,
    connections: int,
    seconds: float,
    warmup: float = 1.0,
    host: str = "127.0.0.1",
) -> LoadResult:
    """``connections`` keep-alive HTTP/1.1 clients GET ``paths(i)`` back to back
    for ``warmup + seconds``; only the last ``seconds`` are measured."""
    result = LoadResult()
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + seconds

    async def client(n: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = n
        try:
            while True:
                t0 = time.monotonic()
                if t0 >= stop_at:
                    return
                writer.write(b"GET " + paths(i) + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
                status, _ = await read_response(reader)
                t1 = time.monotonic()
                result.sent += 1
                if t0 >= measure_from:
                    result.latencies.append(t1 - t0)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if status != 200:
                        result.errors += 1
                i += connections
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    await asyncio.gather(*(client(n) for n in range(connections)))
    result.seconds = seconds
    return result


async def wait_http_ok(
    port: int, path: str, proc: subprocess.Popen[bytes], within: float = 60
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = await reader.read()
            writer.close()
            if data.startswith(b"HTTP/1.1 200"):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{path} on port {port} did not answer 200 within {within} s")


def verdict(value: float, target: float, *, higher_is_better: bool) -> str:
    """How far a measurement is from its target, in words and percent."""
    if higher_is_better:
        met = value >= target
        margin = (value / target - 1) * 100
    else:
        met = value <= target
        margin = (1 - value / target) * 100
    return f"{'met' if met else 'missed'} by {abs(margin):.0f} %"
