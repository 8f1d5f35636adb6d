"""All SQL of the catalog lives here; nothing in this module commits."""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from studio_catalog.models import Episode, Season, Title
from studio_common.db import DriverQuery

_WORD = re.compile(r"\w+", re.UNICODE)

# What a list item shows; selecting only these keeps the hot list query lean.
SUMMARY_COLUMNS = (
    Title.id,
    Title.slug,
    Title.name,
    Title.type,
    Title.year,
    Title.poster_url,
    Title.genres,
    Title.languages,
    Title.rating_avg,
)


def prefix_tsquery(q: str) -> str | None:
    """``'attack tit'`` → ``'attack:* & tit:*'``; only word characters reach to_tsquery."""
    words = _WORD.findall(q.lower())[:10]
    return " & ".join(f"{w}:*" for w in words) or None


def exact_tsquery(q: str) -> str | None:
    """``'attack tit'`` → ``'attack & tit'``: the same words, whole."""
    words = _WORD.findall(q.lower())[:10]
    return " & ".join(words) or None


@dataclass(frozen=True, slots=True)
class TitleFilter:
    q: str | None = None
    genres: tuple[str, ...] = ()
    type: str | None = None
    year: int | None = None


@functools.cache
def _list_statements(
    *, genres: bool, type_: bool, year: bool, q: bool, tsq: bool
) -> tuple[DriverQuery, DriverQuery]:
    """The page and the capped count for one combination of filters.

    Built and compiled once per combination with bound parameters: building,
    cache-keying and executing a fresh statement through SQLAlchemy costs more
    client CPU than the two queries' own round trips.
    """
    conds: list[ColumnElement[bool]] = []
    rank: Any = None
    if genres:
        conds.append(Title.genres.contains(bindparam("genres", type_=Title.genres.type)))
    if type_:
        conds.append(Title.type == bindparam("type"))
    if year:
        conds.append(Title.year == bindparam("year"))
    if q:
        words = bindparam("q", type_=String)
        # Full text (GIN on the tsvector) for words and prefixes; trigram word
        # similarity (GIN on name; `q <% name`) for typos such as "starlite".
        # ADR 3: full-text matches rank above typo matches, and whole words
        # above prefixes; the costly similarity is computed for typo matches
        # alone, and the full-text test comes first so rows it finds skip it.
        typo = words.op("<%")(Title.name)
        rank = func.word_similarity(words, Title.name)
        if tsq:
            prefix = func.to_tsquery("simple", bindparam("tsq", type_=String))
            exact = func.to_tsquery("simple", bindparam("tsq_exact", type_=String))
            hit = Title.search.op("@@")(prefix)
            conds.append(or_(hit, typo))
            rank = case(
                (
                    hit,
                    1 + func.ts_rank(Title.search, prefix) + func.ts_rank(Title.search, exact),
                ),
                else_=rank,
            )
        else:
            conds.append(typo)
    order: list[Any] = [rank.desc()] if rank is not None else []
    order += [Title.name, Title.id]
    page = (
        select(*SUMMARY_COLUMNS)
        .where(*conds)
        .order_by(*order)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )
    matching = select(Title.id).where(*conds).limit(bindparam("count_limit")).subquery()
    count = select(func.count()).select_from(matching)
    return DriverQuery.compile(page), DriverQuery.compile(count)


async def list_title_page(
    conn: AsyncConnection, f: TitleFilter, *, offset: int, limit: int, count_cap: int
) -> tuple[list[dict[str, Any]], int, bool]:
    """One page of title summaries, the number of matches and whether that
    number stopped at ``count_cap``.

    Counting every match of a broad filter costs more than the page itself
    (tens of thousands of rows for one genre of a large catalog), so the
    count stops at the cap; a page that is not full tells the total outright.
    The hottest read of the catalog needs neither the ORM nor a transaction:
    precompiled statements run on the driver (:class:`DriverQuery`).
    """
    q = f.q.strip() if f.q else None
    tsq = prefix_tsquery(q) if q else None
    tsq_exact = exact_tsquery(q) if q else None
    page, count = _list_statements(
        genres=bool(f.genres), type_=bool(f.type), year=f.year is not None, q=bool(q), tsq=bool(tsq)
    )
    values = {
        "genres": list(f.genres),
        "type": f.type,
        "year": f.year,
        "q": q,
        "tsq": tsq,
        "tsq_exact": tsq_exact,
    }
    rows = [dict(r) for r in await page.fetch(conn, **values, offset=offset, limit=limit)]
    if rows and len(rows) < limit:
        return rows, offset + len(rows), False
    counted = int(await count.fetchval(conn, **values, count_limit=count_cap + 1) or 0)
    return rows, min(counted, count_cap), counted > count_cap


class TitleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, title_id: uuid.UUID) -> Title | None:
        return await self.session.get(Title, title_id)

    async def get_by_slug_with_episodes(self, slug: str) -> Title | None:
        stmt = (
            select(Title)
            .where(Title.slug == slug)
            .options(selectinload(Title.seasons).selectinload(Season.episodes))
            # The title may sit in the identity map without its seasons loaded.
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).first()

    async def add(self, title: Title) -> Title:
        self.session.add(title)
        await self.session.flush()
        await self.session.refresh(title)
        return title

    async def save(self, title: Title) -> Title:
        await self.session.flush()
        await self.session.refresh(title)
        return title

    async def delete(self, title_id: uuid.UUID) -> list[uuid.UUID]:
        """Delete a title; returns the ids of the episodes that went with it."""
        episode_ids = list(
            (
                await self.session.scalars(select(Episode.id).where(Episode.title_id == title_id))
            ).all()
        )
        await self.session.execute(delete(Title).where(Title.id == title_id))
        return episode_ids

    async def exists_by_slug(self, slug: str) -> bool:
        return bool(await self.session.scalar(select(literal(True)).where(Title.slug == slug)))


class SeasonRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, season_id: uuid.UUID) -> Season | None:
        return await self.session.get(Season, season_id, options=[selectinload(Season.title)])

    async def add(self, season: Season) -> Season:
        self.session.add(season)
        await self.session.flush()
        return season

    async def delete(self, season_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID]]:
        rows = (
            await self.session.execute(
                select(Episode.id, Episode.title_id).where(Episode.season_id == season_id)
            )
        ).all()
        await self.session.execute(delete(Season).where(Season.id == season_id))
        return [(r[0], r[1]) for r in rows]


class EpisodeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, episode_id: uuid.UUID, *, for_update: bool = False) -> Episode | None:
        stmt = select(Episode).where(Episode.id == episode_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).first()

    async def add(self, episode: Episode) -> Episode:
        self.session.add(episode)
        await self.session.flush()
        await self.session.refresh(episode)
        return episode

    async def save(self, episode: Episode) -> Episode:
        await self.session.flush()
        await self.session.refresh(episode)
        return episode

    async def delete(self, episode_id: uuid.UUID) -> None:
        await self.session.execute(delete(Episode).where(Episode.id == episode_id))

    async def apply_transcode_update(
        self, episode_id: uuid.UUID, occurred_at: datetime, values: dict[str, Any]
    ) -> bool:
        """Apply an update from a transcode event unless a newer one was applied already."""
        result = await self.session.execute(
            update(Episode)
            .where(
                Episode.id == episode_id,
                or_(Episode.transcode_event_at.is_(None), Episode.transcode_event_at < occurred_at),
            )
            .values(**values, transcode_event_at=occurred_at, updated_at=func.now())
            .returning(Episode.id)
        )
        return result.first() is not None

    async def apply_playability(
        self, episode_id: uuid.UUID, occurred_at: datetime, playable: bool
    ) -> bool:
        """Record media's word on playability unless a newer one was recorded."""
        result = await self.session.execute(
            update(Episode)
            .where(
                Episode.id == episode_id,
                or_(Episode.playable_event_at.is_(None), Episode.playable_event_at < occurred_at),
            )
            .values(
                transcode_playable=playable, playable_event_at=occurred_at, updated_at=func.now()
            )
            .returning(Episode.id)
        )
        return result.first() is not None

    async def apply_detected_markers(
        self, episode_id: uuid.UUID, occurred_at: datetime, markers: list[dict[str, Any]]
    ) -> bool:
        """Detected markers, unless an editor set the episode's or a newer detection applied."""
        result = await self.session.execute(
            update(Episode)
            .where(
                Episode.id == episode_id,
                Episode.markers_edited.is_(False),
                or_(Episode.markers_event_at.is_(None), Episode.markers_event_at < occurred_at),
            )
            .values(markers=markers, markers_event_at=occurred_at, updated_at=func.now())
            .returning(Episode.id)
        )
        return result.first() is not None
