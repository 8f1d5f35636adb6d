"""Where the tests' servers come from.

Postgres, NATS and S3 are taken from the environment when given
(``STUDIO_TEST_DATABASE_URL``, ``STUDIO_TEST_NATS_URL``,
``STUDIO_TEST_S3_ENDPOINT_URL``), else from the default local ports when
something answers there, else started with testcontainers where a Docker
engine runs. S3 falls back to moto's real HTTP server in-process
(:mod:`studio_common.testing.moto_s3`).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    with suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def url_reachable(url: str) -> bool:
    parts = urlsplit(url)
    return reachable(parts.hostname or "127.0.0.1", parts.port or 0)


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped,unused-ignore]

        docker.from_env().ping()
    except Exception:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NoServer(RuntimeError):
    pass


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields an admin URL (``postgresql://...``) of a server tests may create databases on."""
    given = os.environ.get("STUDIO_TEST_DATABASE_URL")
    if given:
        yield given.replace("postgresql+asyncpg://", "postgresql://", 1)
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if url_reachable(local):
        yield local
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as pg:
            yield pg.get_connection_url()
        return
    raise NoServer("no PostgreSQL: set STUDIO_TEST_DATABASE_URL or run one on 127.0.0.1:5432")


@contextmanager
def nats_server() -> Iterator[str]:
    given = os.environ.get("STUDIO_TEST_NATS_URL")
    if given:
        yield given
        return
    local = "nats://127.0.0.1:4222"
    if url_reachable(local):
        yield local
        return
    if docker_available():
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        with DockerContainer("nats:2").with_command("-js").with_exposed_ports(4222) as c:
            wait_for_logs(c, "Server is ready")
            yield f"nats://{c.get_container_host_ip()}:{c.get_exposed_port(4222)}"
        return
    raise NoServer("no NATS: set STUDIO_TEST_NATS_URL or run nats-server -js on 127.0.0.1:4222")


@contextmanager
def s3_server() -> Iterator[str]:
    given = os.environ.get("STUDIO_TEST_S3_ENDPOINT_URL")
    if given:
        yield given
        return
    # moto is a development dependency, not one of libs/common's.
    from studio_common.testing.moto_s3 import MotoS3Server

    with MotoS3Server("127.0.0.1") as server:
        yield server.endpoint_url


async def _admin(admin_url: str, sql: str) -> None:
    import asyncpg  # the tests' driver; not needed by the rest of this module

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(admin_url: str, prefix: str = "studio_test") -> str:
    """A fresh database on the server of ``admin_url`` (``postgresql://...``), as a
    SQLAlchemy asyncpg URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def scratch_database(admin_url: str, prefix: str = "studio_test") -> AsyncIterator[str]:
    """:func:`create_database`, dropped (forcibly) afterwards."""
    url = await create_database(admin_url, prefix)
    try:
        yield url
    finally:
        await drop_database(admin_url, url)


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's request handler: no log line per request, JSON answers."""

    def send_json(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Tests read what the server recorded, not its log."""


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free loopback port; yields ``http://127.0.0.1:<port>``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
