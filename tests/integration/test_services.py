"""Every service: migrates only its own schema, boots, and reports health."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from studio_common.migrations import downgrade, upgrade
from studio_common.testing.infra import create_database, drop_database
from studio_common.testing.plugin import serve_app

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["catalog", "identity", "media", "transcoder", "playback"]


@pytest.fixture(scope="module")
def migrated(pg_admin_url: str) -> Iterator[str]:
    """A database of this module's own: apps other tests left running on the
    session database (whose event loop may be paused between tests) can hold an
    outbox row locked, and a downgrade's DROP would wait for them for good."""
    url = asyncio.run(create_database(pg_admin_url, "studio_migrations"))
    try:
        for name in SERVICES:
            upgrade(ROOT / "services" / name, url)
        yield url
    finally:
        asyncio.run(drop_database(pg_admin_url, url))


async def test_each_service_keeps_its_tables_and_version_in_its_own_schema(migrated, pg_admin_url):
    dbname = migrated.rsplit("/", 1)[1]
    conn = await asyncpg.connect(pg_admin_url.rsplit("/", 1)[0] + "/" + dbname)
    try:
        rows = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
    finally:
        await conn.close()
    by_schema: dict[str, set[str]] = {}
    for r in rows:
        by_schema.setdefault(r["table_schema"], set()).add(r["table_name"])
    assert "public" not in by_schema, by_schema.get("public")
    for name in SERVICES:
        assert {"alembic_version", "outbox", "inbox"} <= by_schema[name], name
    assert {"titles", "seasons", "episodes"} <= by_schema["catalog"]


async def test_migrations_go_down_and_up_again(migrated):
    service_dir = ROOT / "services" / "playback"
    downgrade(service_dir, migrated, "base")
    upgrade(service_dir, migrated)


@pytest.mark.parametrize("name", SERVICES)
async def test_service_boots_and_is_ready(name, migrated, service_settings, create_service_app):
    # Required of media outside development (other services ignore them).
    required = {
        "playback_signing_key": "boot-test-playback-signing-key-0123456789ab",
        "public_base_url": "http://media.test",
    }
    app = create_service_app(name, **{**service_settings, "database_url": migrated}, **required)
    async with serve_app(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "nats": "ok"}
        metrics = await client.get("/metrics")
        assert "http_server_request_duration_seconds" in metrics.text
        assert (await client.get("/openapi.json")).status_code == 200
