"""Alembic helpers: each service migrates only its own schema.

A service's ``migrations/env.py`` is two lines::

    from studio_common.migrations import run_env
    run_env(target_metadata=metadata, schema="catalog")

A migration that adds a service's messaging tables calls
:func:`create_messaging_tables` (and :func:`drop_messaging_tables` on the way
down) instead of copying their columns, so every service's tables are the
ones :func:`studio_common.outbox.messaging_tables` declares. A service's first
migration, which holds only those tables, takes both steps from
:func:`messaging_migration`. A timestamp that
defaults to the time of the insert is a :func:`timestamp_column`, an array or
a JSON list that starts empty an :func:`array_column` or a :func:`json_list_column`.

The version table lives inside the service's schema, objects of other schemas
are invisible to autogenerate, and ``search_path`` is pinned to the schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Column, DateTime, MetaData, pool, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def timestamp_column(name: str) -> Column[Any]:
    """A ``timestamptz NOT NULL DEFAULT now()`` column: the created_at,
    updated_at and the like that the models declare with ``server_default=func.now()``."""
    return Column(name, DateTime(timezone=True), server_default=text("now()"), nullable=False)


def array_column(name: str, item_type: Any) -> Column[Any]:
    """A ``NOT NULL`` array that starts empty (``DEFAULT '{}'``)."""
    return Column(name, ARRAY(item_type), server_default=text("'{}'"), nullable=False)


def json_list_column(name: str) -> Column[Any]:
    """A ``jsonb NOT NULL`` that starts as an empty list (``DEFAULT '[]'::jsonb``)."""
    return Column(name, JSONB(), server_default=text("'[]'::jsonb"), nullable=False)


def create_messaging_tables(
    schema: str, *, outbox: str | None = "outbox", inbox: str | None = "inbox"
) -> None:
    """Inside a migration: the outbox (with its pending index) and the inbox,
    as :func:`studio_common.outbox.messaging_tables` declares them."""
    from alembic import op

    from studio_common.outbox import inbox_columns, outbox_columns, pending_index_name

    if inbox is not None:
        op.create_table(inbox, *_named(inbox_columns(), inbox), schema=schema)
    if outbox is not None:
        op.create_table(outbox, *_named(outbox_columns(), outbox), schema=schema)
        op.create_index(
            pending_index_name(outbox),
            outbox,
            ["created_at"],
            schema=schema,
            postgresql_where=text("published_at IS NULL"),
        )


def drop_messaging_tables(
    schema: str, *, outbox: str | None = "outbox", inbox: str | None = "inbox"
) -> None:
    """The reverse of :func:`create_messaging_tables`."""
    from alembic import op

    from studio_common.outbox import pending_index_name

    if outbox is not None:
        op.drop_index(pending_index_name(outbox), table_name=outbox, schema=schema)
        op.drop_table(outbox, schema=schema)
    if inbox is not None:
        op.drop_table(inbox, schema=schema)


def messaging_migration(schema: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """A migration's ``upgrade`` and ``downgrade`` that add and remove the
    schema's messaging tables: a service's first migration, the same in every
    service but for the schema."""

    def upgrade() -> None:
        create_messaging_tables(schema)

    def downgrade() -> None:
        drop_messaging_tables(schema)

    return upgrade, downgrade


def _named(items: list[Any], table: str) -> list[Any]:
    """The primary key named as the services' naming convention names it."""
    from sqlalchemy import PrimaryKeyConstraint

    for item in items:
        if isinstance(item, PrimaryKeyConstraint):
            item.name = f"pk_{table}"
    return items


def alembic_config(service_dir: Path, database_url: str) -> Config:
    cfg = Config(str(service_dir / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_dir / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(service_dir: Path, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service_dir, database_url), revision)


def downgrade(service_dir: Path, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(service_dir, database_url), revision)


def _include_object_for(schema: str) -> Any:
    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if type_ == "table":
            return bool(getattr(obj, "schema", None) == schema)
        return True

    return include_object


def _do_run(connection: Connection, target_metadata: MetaData, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.execute(text(f'SET search_path TO "{schema}", public'))
    connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_object=_include_object_for(schema),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str, target_metadata: MetaData, schema: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as conn:
        await conn.run_sync(_do_run, target_metadata, schema)
    await engine.dispose()


def run_env(*, target_metadata: MetaData, schema: str, settings_url: str | None = None) -> None:
    """Body of a service's ``migrations/env.py``."""
    cfg = context.config
    url = (
        cfg.attributes.get("database_url") or settings_url or cfg.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL given to alembic")
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=target_metadata,
            version_table_schema=schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    # Alembic may be called from inside a running loop (tests, lifespan); run ours apart.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async(url, target_metadata, schema))
    else:
        import threading

        error: list[BaseException] = []

        def runner() -> None:
            try:
                asyncio.run(_run_async(url, target_metadata, schema))
            except BaseException as exc:  # re-raised in the caller's thread
                error.append(exc)

        t = threading.Thread(target=runner)
        t.start()
        t.join()
        if error:
            raise error[0]
