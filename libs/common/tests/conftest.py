"""Fixtures of the libs/common suite: private schemas, streams and a JetStream client.

Everything lives in the session database and NATS namespace handed out by the
``studio_common.testing.plugin`` fixtures, under names no other run can use.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from sqlalchemy import MetaData, text

from studio_common.db import Database, service_metadata
from studio_common.outbox import MessagingTables, ensure_stream, messaging_tables
from studio_common.testing.plugin import EventNamespace


@dataclass
class Schema:
    name: str
    metadata: MetaData
    tables: MessagingTables


@pytest.fixture
def schema_name() -> str:
    return f"commontest_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.connect(database_url, pool_size=5)
    yield database
    await database.dispose()


@pytest.fixture
async def schema(db: Database, schema_name: str) -> AsyncIterator[Schema]:
    """A private schema holding the outbox and inbox tables."""
    metadata = service_metadata(schema_name)
    tables = messaging_tables(metadata)
    async with db.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema_name}"'))
        await conn.run_sync(metadata.create_all)
    yield Schema(schema_name, metadata, tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def js(nc: NatsClient) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
async def stream(
    js: JetStreamContext, event_namespace: EventNamespace
) -> AsyncIterator[EventNamespace]:
    """A stream of this test alone, under a subject root derived from the session's."""
    token = uuid.uuid4().hex[:8]
    ns = EventNamespace(
        subject_root=f"{event_namespace.subject_root}{token}",
        stream=f"{event_namespace.stream}_{token.upper()}",
    )
    await ensure_stream(js, ns.stream, ns.subject_root)
    yield ns
    with suppress(NotFoundError):
        await js.delete_stream(ns.stream)


async def stream_messages(js: JetStreamContext, stream: str) -> list[RawStreamMsg]:
    """Every message a stream holds, oldest first."""
    info = await js.stream_info(stream)
    out: list[RawStreamMsg] = []
    if not info.state.messages:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        with suppress(NotFoundError):
            out.append(await js.get_msg(stream, seq))
    return out


@pytest.fixture
def read_stream(js: JetStreamContext):
    async def read(stream: str) -> list[RawStreamMsg]:
        return await stream_messages(js, stream)

    return read
