"""Title lists and searches on an asyncpg pool of their own.

They are most of the catalog's traffic, and once a search's SQL takes 2 to
4 ms, taking a connection from SQLAlchemy's pool and giving it back (greenlet
hand-offs, a task to shield the release) cost about 0.1 ms of the service's
0.6 to 1 ms of CPU per request. The
list's statements already run on the driver (:class:`DriverQuery`), so they
need no more of SQLAlchemy than the connection. This pool never resets a
connection on release (its statements are single autocommit reads that leave
no state) and plans every statement for its own values (``plan_cache_mode``,
see :func:`studio_catalog.repository._custom_plans`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from studio_catalog.repository import TitleFilter, list_title_page
from studio_common.db import normalise_pg_url
from studio_common.errors import DATABASE, ServiceUnavailable

# As long as SQLAlchemy's pools wait for a free connection.
ACQUIRE_TIMEOUT = 30.0


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Nothing to reset: releasing a connection costs no round trip."""


async def create_pool(database_url: str, size: int) -> asyncpg.Pool:
    # No connection before the first list: the service starts while the
    # database is away, as with SQLAlchemy's pools.
    return await asyncpg.create_pool(
        normalise_pg_url(database_url),
        min_size=0,
        max_size=size,
        reset=_no_reset,
        server_settings={
            "application_name": "catalog-lists",
            "plan_cache_mode": "force_custom_plan",
        },
    )


def _lost(conn: asyncpg.pool.PoolConnectionProxy) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True  # the pool took back a connection that died


@dataclass(frozen=True, slots=True)
class TitleLists:
    pool: asyncpg.Pool
    count_cap: int

    async def page(
        self, f: TitleFilter, *, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """:func:`list_title_page` on a pooled connection. A connection the server
        dropped (a restart, an idle timeout) fails the first attempt; reads are
        safe to run again, once, on another."""
        for attempt in (1, 2):
            try:
                conn = await self.pool.acquire(timeout=ACQUIRE_TIMEOUT)
            except TimeoutError:
                raise ServiceUnavailable(
                    f"{DATABASE} is busy; try again shortly.", headers={"Retry-After": "1"}
                ) from None
            try:
                return await list_title_page(
                    conn, f, offset=offset, limit=limit, count_cap=self.count_cap
                )
            except Exception:
                if attempt == 2 or not _lost(conn):
                    raise
            finally:
                await self.pool.release(conn)
        raise AssertionError("unreachable")
