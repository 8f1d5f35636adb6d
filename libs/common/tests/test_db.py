from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import ARRAY, Integer, String, bindparam, literal, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

from studio_common.db import Database, DriverQuery


async def _backend_and_transaction(conn: AsyncConnection) -> tuple[int, bool]:
    pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    # Outside a transaction block every statement starts its own, so two
    # statements never share a transaction start time.
    first = (await conn.execute(text("SELECT now()"))).scalar_one()
    await conn.execute(text("SELECT pg_sleep(0.01)"))
    second = (await conn.execute(text("SELECT now()"))).scalar_one()
    return pid, first == second


async def test_read_runs_each_statement_outside_a_transaction(db: Database) -> None:
    _, same_transaction = await db.read(_backend_and_transaction)
    assert same_transaction is False
    async with db.transaction() as session:
        first = (await session.execute(text("SELECT now()"))).scalar_one()
        await session.execute(text("SELECT pg_sleep(0.01)"))
        assert (await session.execute(text("SELECT now()"))).scalar_one() == first


async def test_read_survives_a_connection_the_server_dropped(db: Database) -> None:
    pid, _ = await db.read(_backend_and_transaction)
    async with db.engine.connect() as admin:
        assert (
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        ).scalar_one()
    calls: list[int] = []

    async def backend(conn: AsyncConnection) -> int:
        calls.append(1)
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    # The pooled connection is dead: the first attempt fails on it, the second
    # runs on a new backend.
    new_pid = await db.read(backend)
    assert new_pid != pid
    assert len(calls) == 2


async def test_read_does_not_retry_a_failing_statement(db: Database) -> None:
    calls: list[int] = []

    async def broken(conn: AsyncConnection) -> None:
        calls.append(1)
        await conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(ProgrammingError):
        await db.read(broken)
    assert len(calls) == 1


PAIR = DriverQuery.compile(
    select(
        (bindparam("a", type_=Integer) + literal(40)).label("sum"),
        bindparam("words", type_=ARRAY(String)).label("words"),
    )
)


async def test_a_driver_query_binds_values_and_its_constants(db: Database) -> None:
    async def run(conn: AsyncConnection) -> Any:
        return await PAIR.fetch(conn, a=2, words=["x", "y"])

    [row] = await db.read(run)
    assert (row["sum"], row["words"]) == (42, ["x", "y"])


async def test_a_driver_query_survives_a_connection_the_server_dropped(db: Database) -> None:
    pid, _ = await db.read(_backend_and_transaction)
    async with db.engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    calls: list[int] = []

    async def run(conn: AsyncConnection) -> Any:
        calls.append(1)
        return await PAIR.fetch(conn, a=1, words=[])

    [row] = await db.read(run)
    assert row["sum"] == 41
    assert len(calls) == 2
    new_pid, _ = await db.read(_backend_and_transaction)
    assert new_pid != pid
