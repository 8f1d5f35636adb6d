"""Each service's migrations build exactly what its models declare, and undo it.

Migrations share helpers (the messaging tables, the column helpers of
studio_common.migrations), so a change to one helper reaches every schema:
autogenerate, run against the migrated schema with types and server defaults
compared, is what notices a column, a type, a default or an index that no
longer matches the models.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from studio_common.db import normalise_pg_url
from studio_common.migrations import downgrade, upgrade
from studio_common.testing.infra import scratch_database

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["catalog", "identity", "media", "transcoder", "playback"]


async def _tables(url: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(normalise_pg_url(url))
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
    finally:
        await conn.close()
    return {r["table_name"] for r in rows}


async def _differences(url: str, schema: str) -> list[Any]:
    """What autogenerate would write to bring the schema to the models."""
    metadata = importlib.import_module(f"studio_{schema}.models").metadata

    def compare(conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "compare_type": True,
                "compare_server_default": True,
                "include_name": lambda name, type_, _: type_ != "schema" or name == schema,
                "include_object": lambda obj, name, type_, *_: (
                    type_ != "table" or name != "alembic_version"
                ),
            },
        )
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("name", SERVICES)
async def test_migrations_match_the_models_and_go_down_and_up(name: str, pg_admin_url: str) -> None:
    service_dir = ROOT / "services" / name
    async with scratch_database(pg_admin_url, "studio_schema") as url:
        upgrade(service_dir, url)
        assert await _differences(url, name) == []
        tables = await _tables(url, name)
        assert {"alembic_version", "outbox", "inbox"} <= tables

        downgrade(service_dir, url, "base")
        assert await _tables(url, name) == {"alembic_version"}

        upgrade(service_dir, url)
        assert await _tables(url, name) == tables
        assert await _differences(url, name) == []
