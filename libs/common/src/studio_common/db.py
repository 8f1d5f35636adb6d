"""Async SQLAlchemy: one engine per process, built in the app's lifespan.

The request owns the transaction: :func:`session_dependency` opens it,
commits when the endpoint returns and rolls back when it raises. Services and
repositories only ``flush``; they never commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import MetaData, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

T = TypeVar("T")

# Stable constraint names so migrations and 409 responses can refer to them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


@dataclass(slots=True)
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # For `read`: its pool opens connections only once a read runs.
    reader: AsyncEngine

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int | None = None,
        read_pool_size: int | None = None,
        echo: bool = False,
    ) -> Database:
        """Two pools: transactions (``pool_size``) and `read` (``read_pool_size``,
        the same unless given), each with up to ``max_overflow`` more connections
        under load (as many as the pool unless given). The reader opens none
        until a read runs. :meth:`ServiceSettings.database_connections` adds them up."""
        overflow = pool_size if max_overflow is None else max_overflow
        read_size = pool_size if read_pool_size is None else read_pool_size
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=overflow,
            pool_pre_ping=True,
            echo=echo,
        )
        # Autocommit: a read sends no BEGIN/COMMIT. No pre-ping: on asyncpg it
        # costs three round trips per checkout (BEGIN, ping, ROLLBACK); `read`
        # retries on a fresh connection instead, which is safe for reads alone.
        reader = create_async_engine(
            url,
            pool_size=read_size,
            max_overflow=overflow,
            isolation_level="AUTOCOMMIT",
            echo=echo,
        )
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False), reader)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run read-only ``work`` outside a transaction, each statement on its own.

        For hot reads that need no consistent snapshot across statements. A
        connection the server dropped (a restart, an idle timeout) fails the
        first attempt and is discarded; the work then runs once more on a new one.
        """
        for attempt in (1, 2):
            try:
                async with self.reader.connect() as conn:
                    try:
                        return await work(conn)
                    except DBAPIError:
                        raise
                    except Exception:
                        # Raised by the driver itself (DriverQuery): SQLAlchemy
                        # cannot tell the connection died, so it is told here.
                        if attempt == 2 or not await _driver_closed(conn):
                            raise
                        await conn.invalidate()
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.reader.dispose()


async def _driver_closed(conn: AsyncConnection) -> bool:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    return driver is None or bool(driver.is_closed())


_ASYNCPG = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class DriverQuery:
    """A Core statement compiled once for asyncpg and run on the driver itself.

    For the hottest reads: per execution SQLAlchemy processes parameters, builds
    result metadata and adapts rows, about a third of a short query's client
    CPU. Only for statements whose parameters and columns need no SQLAlchemy
    type processing (numbers, strings, arrays of them, UUIDs, timestamps).
    Run inside :meth:`Database.read`, which recovers from a dropped connection,
    or on a connection of a service's own asyncpg pool (JSON then arrives as text).
    """

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]

    @classmethod
    def compile(cls, statement: ClauseElement) -> DriverQuery:
        compiled = cast(SQLCompiler, statement.compile(dialect=_ASYNCPG))
        return cls(compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params))

    def _args(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[n] if n in values else self.constants[n] for n in self.names]

    async def fetch(self, conn: DriverConnection, **values: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await (await driver_of(conn)).fetch(
            self.sql, *self._args(values)
        )
        return rows

    async def fetchval(self, conn: DriverConnection, **values: Any) -> Any:
        return await (await driver_of(conn)).fetchval(self.sql, *self._args(values))


# What a DriverQuery runs on: a SQLAlchemy connection, or one acquired from an
# asyncpg pool (a proxy with the connection's methods).
DriverConnection = AsyncConnection | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def driver_of(conn: DriverConnection) -> asyncpg.Connection:
    """The asyncpg connection to run statements on."""
    if not isinstance(conn, AsyncConnection):
        return cast(asyncpg.Connection, conn)
    driver: asyncpg.Connection | None = (await conn.get_raw_connection()).driver_connection
    assert driver is not None, "a checked-out connection has its driver connection"
    return driver


def get_database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


async def session_dependency(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).transaction() as session:
        yield session
        # Flush inside the dependency so constraint violations surface while the
        # error handlers can still turn them into 409s.
        await session.flush()


# scope="function": the transaction ends when the endpoint returns, before the
# response is sent. With the default request scope FastAPI would commit after
# the client already got its 2xx, and a failing COMMIT could not become a 409.
SessionDep = Annotated[AsyncSession, Depends(session_dependency, scope="function")]


def normalise_pg_url(url: str) -> str:
    """asyncpg wants ``postgresql://``; SQLAlchemy wants ``postgresql+asyncpg://``."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
