"""All SQL of the playback service; nothing here commits.

Requests and event handlers run these in the caller's SQLAlchemy transaction,
except :data:`SAVE_POSITION_SQL`, the hot path, which runs as one autocommit
statement on a plain asyncpg pool (see :mod:`studio_playback.positions`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

# --- positions: the hot path ------------------------------------------------

# $1 user, $2 episode, $3 position, $4 ordering key, $5 watched fraction (used
# when the episode has no ending marker: then it is watched from the ending's start).
# One statement: find the episode, refuse an erased user, insert or update the
# position unless a write with a greater key is already stored. Concurrent
# writes to one row serialise on it (ON CONFLICT locks the row and re-checks
# the WHERE against the latest version), so the greatest key always wins.
SAVE_POSITION_SQL = """
WITH ep AS (
    SELECT e.id, e.title_id, e.duration_sec, e.watched_from_sec
    FROM playback.episodes e
    WHERE e.id = $2 AND e.title_id IS NOT NULL
), erased AS (
    SELECT 1 FROM playback.deleted_users d WHERE d.user_id = $1
), saved AS (
    INSERT INTO playback.positions AS p (user_id, episode_id, position_sec, watched, seq, updated_at)
    SELECT $1, ep.id,
           LEAST($3::float8, ep.duration_sec),
           COALESCE($3::float8 >= COALESCE(ep.watched_from_sec, $5::float8 * ep.duration_sec), false),
           $4, now()
    FROM ep
    WHERE NOT EXISTS (SELECT 1 FROM erased)
    ON CONFLICT (user_id, episode_id) DO UPDATE
        SET position_sec = excluded.position_sec,
            watched = p.watched OR excluded.watched,
            seq = excluded.seq,
            updated_at = excluded.updated_at
        WHERE excluded.seq > p.seq
    RETURNING p.position_sec, p.watched, p.seq, p.updated_at
)
SELECT ep.title_id, ep.duration_sec,
       EXISTS (SELECT 1 FROM erased) AS erased,
       saved.position_sec, saved.watched, saved.seq, saved.updated_at
FROM (SELECT 1) AS one
LEFT JOIN ep ON true
LEFT JOIN saved ON true
"""

# The same write for many positions at once: $1..$4 are arrays (user, episode,
# position, ordering key) with at most one element per (user, episode), $5 the
# watched fraction. Rows are inserted in key order, so concurrent batches lock
# shared rows in the same order and cannot deadlock. One result row per input
# element, in input order: the episode (NULL title when unknown), whether the
# user is erased, and the stored position when this write was applied.
SAVE_POSITIONS_SQL = """
WITH input AS (
    SELECT w.user_id, w.episode_id, w.position_sec, w.seq, w.n
    FROM unnest($1::text[], $2::uuid[], $3::float8[], $4::int8[])
         WITH ORDINALITY AS w(user_id, episode_id, position_sec, seq, n)
), known AS (
    SELECT w.n, w.user_id, w.episode_id, w.seq, e.title_id, e.duration_sec,
           LEAST(w.position_sec, e.duration_sec) AS position_sec,
           COALESCE(
               w.position_sec >= COALESCE(e.watched_from_sec, $5::float8 * e.duration_sec), false
           ) AS watched,
           EXISTS (SELECT 1 FROM playback.deleted_users d WHERE d.user_id = w.user_id)
               AS erased
    FROM input w
    JOIN playback.episodes e ON e.id = w.episode_id AND e.title_id IS NOT NULL
), saved AS (
    INSERT INTO playback.positions AS p (user_id, episode_id, position_sec, watched, seq, updated_at)
    SELECT k.user_id, k.episode_id, k.position_sec, k.watched, k.seq, now()
    FROM known k
    WHERE NOT k.erased
    ORDER BY k.user_id, k.episode_id
    ON CONFLICT (user_id, episode_id) DO UPDATE
        SET position_sec = excluded.position_sec,
            watched = p.watched OR excluded.watched,
            seq = excluded.seq,
            updated_at = excluded.updated_at
        WHERE excluded.seq > p.seq
    RETURNING p.user_id, p.episode_id, p.position_sec, p.watched, p.seq, p.updated_at
)
SELECT k.title_id, k.duration_sec, COALESCE(k.erased, false) AS erased,
       s.position_sec, s.watched, s.seq, s.updated_at
FROM input w
LEFT JOIN known k ON k.n = w.n
LEFT JOIN saved s ON s.user_id = w.user_id AND s.episode_id = w.episode_id
ORDER BY w.n
"""

# The stored position, for the response to a write that lost to a newer one.
CURRENT_POSITION_SQL = """
SELECT LEAST(p.position_sec, e.duration_sec) AS position_sec,
       p.watched, p.seq, p.updated_at
FROM playback.positions p
JOIN playback.episodes e ON e.id = p.episode_id
WHERE p.user_id = $1 AND p.episode_id = $2
"""


class PlaybackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- favorites -------------------------------------------------------------

    async def toggle_favorite(
        self, user_id: str, title_id: uuid.UUID, want: bool | None
    ) -> bool | None:
        """Flip (or set) the favorite in one statement; None if the title is
        unknown or the user erased.

        The row is unique per (user, title); ON CONFLICT DO UPDATE either inserts
        it or locks and updates the latest committed version, so concurrent
        toggles apply one after the other.
        """
        row = (
            await self.session.execute(
                text(
                    """
                    INSERT INTO playback.favorites AS f
                        (user_id, title_id, active, favorited_at, updated_at)
                    SELECT :user_id, t.id, COALESCE(CAST(:want AS boolean), true),
                           clock_timestamp(), clock_timestamp()
                    FROM playback.titles t
                    WHERE t.id = :title_id
                      AND NOT EXISTS (
                          SELECT 1 FROM playback.deleted_users WHERE user_id = :user_id
                      )
                    ON CONFLICT (user_id, title_id) DO UPDATE
                        SET active = COALESCE(CAST(:want AS boolean), NOT f.active),
                            favorited_at = CASE
                                WHEN COALESCE(CAST(:want AS boolean), NOT f.active)
                                     AND NOT f.active
                                THEN excluded.favorited_at
                                ELSE f.favorited_at
                            END,
                            updated_at = excluded.updated_at
                    RETURNING f.active
                    """
                ),
                {"user_id": user_id, "title_id": title_id, "want": want},
            )
        ).first()
        return None if row is None else bool(row.active)

    async def watchlist(
        self, user_id: str, *, offset: int, limit: int
    ) -> tuple[Sequence[RowMapping], int]:
        total = await self.session.scalar(
            text("SELECT count(*) FROM playback.favorites WHERE user_id = :u AND active"),
            {"u": user_id},
        )
        rows = (
            await self.session.execute(
                text(
                    """
                    SELECT f.title_id, t.slug, t.name, f.favorited_at
                    FROM playback.favorites f
                    JOIN playback.titles t ON t.id = f.title_id
                    WHERE f.user_id = :u AND f.active
                    ORDER BY f.favorited_at DESC, f.title_id DESC
                    LIMIT :limit OFFSET :offset
                    """
                ),
                {"u": user_id, "limit": limit, "offset": offset},
            )
        ).mappings()
        return rows.all(), int(total or 0)

    # --- positions (reads) -----------------------------------------------------

    async def position(self, user_id: str, episode_id: uuid.UUID) -> RowMapping | None:
        """The episode and this user's position in it (NULLs when none yet)."""
        return (
            (
                await self.session.execute(
                    text(
                        """
                        SELECT e.id AS episode_id, e.title_id, e.duration_sec,
                               -- LEAST ignores NULLs: no duration, no clamp.
                               CASE WHEN p.position_sec IS NOT NULL
                                    THEN LEAST(p.position_sec, e.duration_sec)
                               END AS position_sec,
                               p.watched, p.seq, p.updated_at
                        FROM playback.episodes e
                        LEFT JOIN playback.positions p
                            ON p.episode_id = e.id AND p.user_id = :u
                        WHERE e.id = :ep AND e.title_id IS NOT NULL
                        """
                    ),
                    {"u": user_id, "ep": episode_id},
                )
            )
            .mappings()
            .first()
        )

    async def continue_watching(
        self, user_id: str, *, fraction: float, limit: int
    ) -> Sequence[RowMapping]:
        """Per title, the episode of the latest activity; the next one when that was finished.

        Titles whose last episode is finished and that have no later episode are
        done and left out. Newest activity first.
        """
        return (
            (
                await self.session.execute(
                    text(
                        """
                        WITH latest AS (
                            SELECT DISTINCT ON (e.title_id)
                                   e.title_id, p.episode_id, p.position_sec, p.updated_at,
                                   e.season_number, e.episode_number, e.duration_sec,
                                   COALESCE(p.position_sec >= COALESCE(
                                       e.watched_from_sec, :fraction * e.duration_sec), false)
                                       AS finished
                            FROM playback.positions p
                            JOIN playback.episodes e ON e.id = p.episode_id
                            WHERE p.user_id = :u AND e.title_id IS NOT NULL
                            ORDER BY e.title_id, p.updated_at DESC, p.seq DESC
                        )
                        SELECT l.title_id, t.slug, t.name, l.updated_at AS last_activity_at,
                               l.finished AS up_next,
                               CASE WHEN l.finished THEN n.id ELSE l.episode_id END
                                   AS episode_id,
                               CASE WHEN l.finished THEN n.season_number
                                    ELSE l.season_number END AS season_number,
                               CASE WHEN l.finished THEN n.episode_number
                                    ELSE l.episode_number END AS episode_number,
                               CASE WHEN l.finished THEN n.duration_sec
                                    ELSE l.duration_sec END AS duration_sec,
                               CASE
                                   WHEN NOT l.finished
                                       THEN LEAST(l.position_sec, l.duration_sec)
                                   -- The next episode was started before: resume it,
                                   -- unless it was finished too.
                                   WHEN np.position_sec IS NOT NULL
                                        AND NOT COALESCE(
                                            np.position_sec >= COALESCE(n.watched_from_sec,
                                                :fraction * n.duration_sec), false)
                                       THEN np.position_sec
                                   ELSE 0
                               END AS position_sec
                        FROM latest l
                        LEFT JOIN playback.titles t ON t.id = l.title_id
                        LEFT JOIN LATERAL (
                            SELECT e2.id, e2.season_number, e2.episode_number, e2.duration_sec,
                                   e2.watched_from_sec
                            FROM playback.episodes e2
                            WHERE l.finished
                              AND e2.title_id = l.title_id
                              AND (e2.season_number, e2.episode_number)
                                  > (l.season_number, l.episode_number)
                            ORDER BY e2.season_number, e2.episode_number
                            LIMIT 1
                        ) n ON true
                        LEFT JOIN playback.positions np
                            ON np.user_id = :u AND np.episode_id = n.id
                        WHERE NOT l.finished OR n.id IS NOT NULL
                        ORDER BY l.updated_at DESC, l.title_id
                        LIMIT :limit
                        """
                    ),
                    {"u": user_id, "fraction": fraction, "limit": limit},
                )
            )
            .mappings()
            .all()
        )

    # --- projections from events -----------------------------------------------

    async def lock(self, kind: str, entity_id: uuid.UUID, *, shared: bool = False) -> None:
        """Serialise the handlers that touch one title or episode (until commit).

        Each event type has its own consumer, so a ``deleted`` and a late
        ``created`` of one entity may be applied at the same time.
        """
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await self.session.execute(
            text(f"SELECT {fn}(hashtextextended(:key, 0))"),
            {"key": f"playback.{kind}:{entity_id}"},
        )

    async def upsert_title(
        self, title_id: uuid.UUID, slug: str, name: str, event_at: datetime
    ) -> None:
        await self.session.execute(
            text(
                """
                INSERT INTO playback.titles AS t (id, slug, name, event_at)
                SELECT :id, :slug, :name, :at
                WHERE NOT EXISTS (
                    SELECT 1 FROM playback.tombstones WHERE kind = 'title' AND id = :id
                )
                ON CONFLICT (id) DO UPDATE
                    SET slug = excluded.slug, name = excluded.name, event_at = excluded.event_at
                    WHERE t.event_at < excluded.event_at
                """
            ),
            {"id": title_id, "slug": slug, "name": name, "at": event_at},
        )

    async def delete_title(self, title_id: uuid.UUID, episode_ids: list[uuid.UUID]) -> None:
        """Tombstone the title and its episodes and delete them; favorites and
        positions go with them (ON DELETE CASCADE)."""
        await self.session.execute(
            text(
                """
                WITH gone AS (
                    DELETE FROM playback.episodes
                    WHERE id = ANY(:ids) OR title_id = :id
                    RETURNING id
                )
                INSERT INTO playback.tombstones (kind, id)
                SELECT 'episode', id FROM gone
                UNION
                SELECT 'episode', unnest(:ids)
                UNION
                SELECT 'title', CAST(:id AS uuid)
                ON CONFLICT DO NOTHING
                """
            ).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))),
            {"id": title_id, "ids": episode_ids},
        )
        await self.session.execute(
            text("DELETE FROM playback.titles WHERE id = :id"), {"id": title_id}
        )

    async def upsert_episode(
        self,
        episode_id: uuid.UUID,
        title_id: uuid.UUID,
        season_number: int,
        episode_number: int,
        event_at: datetime,
    ) -> None:
        await self.session.execute(
            text(
                """
                INSERT INTO playback.episodes AS e
                    (id, title_id, season_number, episode_number, event_at)
                SELECT :id, :title_id, :season, :number, :at
                WHERE NOT EXISTS (
                    SELECT 1 FROM playback.tombstones
                    WHERE (kind = 'episode' AND id = :id) OR (kind = 'title' AND id = :title_id)
                )
                ON CONFLICT (id) DO UPDATE
                    SET title_id = excluded.title_id,
                        season_number = excluded.season_number,
                        episode_number = excluded.episode_number,
                        event_at = excluded.event_at
                    WHERE e.event_at IS NULL OR e.event_at < excluded.event_at
                """
            ),
            {
                "id": episode_id,
                "title_id": title_id,
                "season": season_number,
                "number": episode_number,
                "at": event_at,
            },
        )

    async def episode_known(self, episode_id: uuid.UUID) -> bool:
        """Whether catalog announced the episode (a deleted one counts: it is known gone)."""
        found = await self.session.scalar(
            text(
                """
                SELECT EXISTS (
                    SELECT 1 FROM playback.episodes WHERE id = :id AND title_id IS NOT NULL
                ) OR EXISTS (
                    SELECT 1 FROM playback.tombstones WHERE kind = 'episode' AND id = :id
                )
                """
            ),
            {"id": episode_id},
        )
        return bool(found)

    async def _set_newer(
        self,
        episode_id: uuid.UUID,
        column: str,
        at_column: str,
        value: float | None,
        event_at: datetime,
    ) -> None:
        """One projected column of the episode, kept unless an older event than the one
        it holds; each column has its own event time, as its events arrive apart."""
        # The column names are the constants below, never input.
        await self.session.execute(
            text(
                f"""
                INSERT INTO playback.episodes AS e (id, {column}, {at_column})
                SELECT :id, :value, :at
                WHERE NOT EXISTS (
                    SELECT 1 FROM playback.tombstones WHERE kind = 'episode' AND id = :id
                )
                ON CONFLICT (id) DO UPDATE
                    SET {column} = excluded.{column}, {at_column} = excluded.{at_column}
                    WHERE e.{at_column} IS NULL OR e.{at_column} < excluded.{at_column}
                """  # noqa: S608
            ),
            {"id": episode_id, "value": value, "at": event_at},
        )

    async def set_duration(
        self, episode_id: uuid.UUID, duration_sec: float, event_at: datetime
    ) -> None:
        await self._set_newer(episode_id, "duration_sec", "duration_at", duration_sec, event_at)

    async def set_watched_from(
        self, episode_id: uuid.UUID, watched_from_sec: float | None, event_at: datetime
    ) -> None:
        await self._set_newer(
            episode_id, "watched_from_sec", "markers_at", watched_from_sec, event_at
        )

    async def delete_episode(self, episode_id: uuid.UUID) -> None:
        await self.session.execute(
            text(
                """
                INSERT INTO playback.tombstones (kind, id) VALUES ('episode', :id)
                ON CONFLICT DO NOTHING
                """
            ),
            {"id": episode_id},
        )
        await self.session.execute(
            text("DELETE FROM playback.episodes WHERE id = :id"), {"id": episode_id}
        )

    async def add_user(self, user_id: uuid.UUID, subject: str) -> None:
        """Learn a user's id, unless the subject was erased (a late ``created``)."""
        await self.session.execute(
            text(
                "INSERT INTO playback.users (id, subject) SELECT :id, :s "
                "WHERE NOT EXISTS (SELECT 1 FROM playback.deleted_users WHERE user_id = :s) "
                "ON CONFLICT DO NOTHING"
            ),
            {"id": user_id, "s": subject},
        )

    async def subject_of(self, user_id: uuid.UUID) -> str | None:
        subject: str | None = await self.session.scalar(
            text("SELECT subject FROM playback.users WHERE id = :id"), {"id": user_id}
        )
        return subject

    async def erase_user(self, user_id: str) -> None:
        """Delete everything of a user and refuse their later writes."""
        params: dict[str, Any] = {"u": user_id}
        await self.session.execute(text("DELETE FROM playback.users WHERE subject = :u"), params)
        await self.session.execute(
            text("INSERT INTO playback.deleted_users (user_id) VALUES (:u) ON CONFLICT DO NOTHING"),
            params,
        )
        await self.session.execute(
            text("DELETE FROM playback.favorites WHERE user_id = :u"), params
        )
        await self.session.execute(
            text("DELETE FROM playback.positions WHERE user_id = :u"), params
        )

    async def user_erased(self, user_id: str) -> bool:
        return bool(
            await self.session.scalar(
                text("SELECT EXISTS (SELECT 1 FROM playback.deleted_users WHERE user_id = :u)"),
                {"u": user_id},
            )
        )
