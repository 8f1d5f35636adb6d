"""The hot path: saving resume positions.

Writes bypass the ORM and run on a plain asyncpg pool, as single autocommit
statements prepared once per connection, with no reset query on release.

Writes that arrive together are coalesced: while a batch is in flight the
next writes queue up, and the next batch saves them all with one statement
(:data:`~studio_playback.repository.SAVE_POSITIONS_SQL`, the same upsert over
arrays), so a busy service pays one round trip and one commit per batch
instead of per write. A batch holds at most one write per (user, episode);
another write to the same row waits for the next batch, so every write is
applied exactly as if it had been sent alone. If a batch fails (say an
episode was deleted meanwhile), its writes are retried one by one, each
getting its own answer. ``batch_size=1`` turns coalescing off.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from studio_common.db import normalise_pg_url
from studio_common.errors import Forbidden, NotFound, ServiceUnavailable, TooManyRequests
from studio_playback.repository import (
    CURRENT_POSITION_SQL,
    SAVE_POSITION_SQL,
    SAVE_POSITIONS_SQL,
)
from studio_playback.schemas import PositionOut

log = logging.getLogger("studio.playback.positions")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def now_micros() -> int:
    return time.time_ns() // 1000


def ordering_key(sequence: int | None, client_time: datetime | None, now_us: int) -> int:
    """The key that orders one user's writes to one episode (greater wins).

    ``sequence`` as given; else ``clientTime`` in Unix microseconds, capped at
    the server's clock so a device whose clock runs ahead cannot pin its
    position; else the arrival time.
    """
    if sequence is not None:
        return sequence
    if client_time is not None:
        return min((client_time - _EPOCH) // _MICROSECOND, now_us)
    return now_us


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Connections only ever run single autocommit statements: nothing to reset,
    so releasing one does not cost a round trip."""


def _one_line_floor_warnings(record: logging.LogRecord) -> bool:
    """asyncpg logs each failed attempt to refill the pool (1 s, 2 s, 4 s ...
    apart while the database is away) with a traceback: an outage, not a bug.
    The line stays; its traceback becomes the error's one-line repr."""
    if record.exc_info and str(record.msg).startswith("Failed to restore the pool"):
        error = record.exc_info[1]
        record.msg = f"{record.msg}: {error!r}"
        record.exc_info = None
        record.exc_text = None
    return True


async def create_pool(database_url: str, size: int) -> asyncpg.Pool:
    pool_log = logging.getLogger("asyncpg.pool")
    if _one_line_floor_warnings not in pool_log.filters:
        pool_log.addFilter(_one_line_floor_warnings)
    return await asyncpg.create_pool(
        normalise_pg_url(database_url),
        min_size=min(2, size),
        max_size=size,
        reset=_no_reset,
        server_settings={"application_name": "playback-positions"},
    )


@dataclass(slots=True)
class _Write:
    user_id: str
    episode_id: uuid.UUID
    position_sec: float
    key: int
    future: asyncio.Future[Any]


class PositionWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        watched_fraction: float,
        batch_size: int = 128,
        concurrent_batches: int = 4,
        max_pending: int = 10_000,
    ) -> None:
        self.pool = pool
        self.watched_fraction = watched_fraction
        self.batch_size = batch_size
        self.concurrent_batches = concurrent_batches
        self.max_pending = max_pending
        self._pending: list[_Write] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def save(
        self, user_id: str, episode_id: uuid.UUID, position_sec: float, key: int
    ) -> PositionOut:
        if self.batch_size <= 1:
            row = await self._save_one(user_id, episode_id, position_sec, key)
        else:
            if len(self._pending) >= self.max_pending:
                raise TooManyRequests("Too many position writes are waiting.", retry_after=1)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending.append(_Write(user_id, episode_id, position_sec, key, future))
            self._start_batches()
            row = await future
        return await self._answer(row, user_id, episode_id)

    # --- batching --------------------------------------------------------------

    def _start_batches(self) -> None:
        while self._pending and self._running < self.concurrent_batches:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                try:
                    await self._write_batch(batch)
                except asyncio.CancelledError:
                    self._fail(batch + self._pending, ServiceUnavailable("Shutting down."))
                    self._pending = []
                    raise
                except Exception as exc:  # a bug: answer, never leave a request hanging
                    log.exception("position batch failed")
                    self._fail(batch, exc)
        finally:
            self._running -= 1

    @staticmethod
    def _fail(writes: list[_Write], exc: Exception) -> None:
        for write in writes:
            if not write.future.done():
                write.future.set_exception(exc)

    def _take(self) -> list[_Write]:
        """Up to ``batch_size`` writes, at most one per (user, episode), oldest first."""
        batch: list[_Write] = []
        later: list[_Write] = []
        rows: set[tuple[str, uuid.UUID]] = set()
        for write in self._pending:
            if write.future.done():  # the request went away
                continue
            row = (write.user_id, write.episode_id)
            if len(batch) < self.batch_size and row not in rows:
                rows.add(row)
                batch.append(write)
            else:
                later.append(write)
        self._pending = later
        return batch

    async def _write_batch(self, batch: list[_Write]) -> None:
        if not batch:
            return
        try:
            rows = await self.pool.fetch(
                SAVE_POSITIONS_SQL,
                [w.user_id for w in batch],
                [w.episode_id for w in batch],
                [w.position_sec for w in batch],
                [w.key for w in batch],
                self.watched_fraction,
            )
        except Exception:
            # One write may have spoilt the statement for all: answer each alone.
            await asyncio.gather(*(self._write_alone(w) for w in batch))
            return
        for write, row in zip(batch, rows, strict=True):
            if not write.future.done():
                write.future.set_result(row)

    async def _write_alone(self, write: _Write) -> None:
        try:
            row = await self._save_one(
                write.user_id, write.episode_id, write.position_sec, write.key
            )
        except Exception as exc:
            if not write.future.done():
                write.future.set_exception(exc)
        else:
            if not write.future.done():
                write.future.set_result(row)

    # --- one write, and the answer -----------------------------------------------

    async def _save_one(
        self, user_id: str, episode_id: uuid.UUID, position_sec: float, key: int
    ) -> Any:
        try:
            return await self.pool.fetchrow(
                SAVE_POSITION_SQL, user_id, episode_id, position_sec, key, self.watched_fraction
            )
        except asyncpg.ForeignKeyViolationError as exc:
            # The episode was deleted between our read of it and the insert.
            raise NotFound(f"No episode with id {episode_id}.") from exc

    async def _answer(self, row: Any, user_id: str, episode_id: uuid.UUID) -> PositionOut:
        if row is None or row["title_id"] is None:
            raise NotFound(f"No episode with id {episode_id}.")
        if row["erased"]:
            raise Forbidden("This user was deleted.")
        applied = row["seq"] is not None
        stored = row
        if not applied:
            # A write with a greater key is stored: report that one (the rare path).
            stored = await self.pool.fetchrow(CURRENT_POSITION_SQL, user_id, episode_id)
            if stored is None:  # deleted in between
                raise NotFound(f"No episode with id {episode_id}.")
        return PositionOut(
            episode_id=episode_id,
            title_id=row["title_id"],
            position_sec=stored["position_sec"],
            duration_sec=row["duration_sec"],
            watched=stored["watched"],
            applied=applied,
            sequence=stored["seq"],
            updated_at=stored["updated_at"],
        )
