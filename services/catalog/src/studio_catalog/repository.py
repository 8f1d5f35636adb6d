"""All SQL of the catalog lives here; nothing in this module commits."""

from __future__ import annotations

import dataclasses
import functools
import re
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from studio_catalog.models import Episode, SearchWord, Season, Title, TitleKey
from studio_catalog.names import cjk_grams, has_kana, has_kanji, is_cjk, query_keys
from studio_common.db import DriverConnection, DriverQuery

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
    Title.names,
)


# Words too common to narrow a search on their own: a query of these alone
# (or of one character) matches whole names only, one index lookup.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "at",
        "by",
        "de",
        "for",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "to",
        "wa",
        "ga",
        "no",
        "ni",
        "wo",
        "o",
        "e",
        "de",
        "mo",
    ]
)
# How many titles each way of matching contributes before ranking: a broad
# word ranks this many candidates, not every title it matches.
CANDIDATES = 200
# How many of the catalog's words the last word of a query may stand for.
COMPLETIONS = 16


def _words(q: str) -> list[str]:
    return [w for w in _WORD.findall(q.lower()) if w not in STOP_WORDS][:10]


def prefix_tsquery(q: str) -> str | None:
    """``'attack on tit'`` → ``'attack & tit:*'``: whole words, and the last one (being
    typed) also as a prefix; only word characters reach to_tsquery, stop words left
    out. A prefix makes the index collect every word it begins (ten times the cost
    of a whole word for ``star:*``), so only the last word is one; a misspelt or
    cut-off earlier word is the typo pass's to mend."""
    words = _words(q)
    return " & ".join([*words[:-1], f"{words[-1]}:*"]) if words else None


def exact_tsquery(q: str) -> str | None:
    """``'attack tit'`` → ``'attack & tit'``: the same words, whole."""
    return " & ".join(_words(q)) or None


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """What a query may match by, decided before any SQL runs."""

    keys: list[str]  # exact names: the folded query, its romaji if kana
    key: str  # the form matched by prefix, words and typos
    prefix: str | None  # LIKE pattern: a name starting with the query
    substring: str | None  # LIKE pattern: CJK text anywhere in a name
    grams: list[str]  # its two-character runs, all of which such a name has
    tsq: str | None
    tsq_exact: str | None
    typo: bool

    @classmethod
    def of(cls, q: str) -> SearchPlan:
        # A query of marks alone (a lone ー or combining accent) folds to nothing.
        keys = query_keys(q) or [""]
        key = keys[1] if has_kana(q) and not has_kanji(q) and len(keys) > 1 else keys[0]
        cjk = is_cjk(q)
        words = _words(key)
        narrow = len(key) >= 2 and bool(words)
        grams = cjk_grams(keys[0]) if cjk else []
        substring = f"%{_like_escape(keys[0])}%" if grams else None
        return cls(
            keys=keys,
            key=key,
            prefix=f"%\n{_like_escape(key)}%" if narrow else None,
            substring=substring,
            grams=grams,
            tsq=prefix_tsquery(key) if narrow else None,
            tsq_exact=exact_tsquery(key) if narrow else None,
            typo=narrow and not is_cjk(key) and len(key) >= 4,
        )


@dataclass(frozen=True, slots=True)
class TitleFilter:
    q: str | None = None
    genres: tuple[str, ...] = ()
    type: str | None = None
    year: int | None = None


@functools.cache
def _list_statements(
    *,
    genres: bool,
    type_: bool,
    year: bool,
    q: bool,
    prefix: bool = False,
    substring: bool = False,
    tsq: bool = False,
) -> tuple[DriverQuery, DriverQuery]:
    """The page and the capped count for one combination of filters.

    Built and compiled once per combination with bound parameters: building,
    cache-keying and executing a fresh statement through SQLAlchemy costs more
    client CPU than the two queries' own round trips.

    A search (ADR 3) runs in two phases: each way of matching (an exact name
    or a name's prefix through ``title_keys``, CJK text inside a name, full-text
    words) finds at most ``candidates`` titles through its own index, and only
    those are ranked: exact names first, then prefixes, then words (whole above
    prefixes).
    """
    filters: list[ColumnElement[bool]] = []
    if genres:
        filters.append(Title.genres.contains(bindparam("genres", type_=Title.genres.type)))
    if type_:
        filters.append(Title.type == bindparam("type"))
    if year:
        filters.append(Title.year == bindparam("year"))
    if not q:
        page = (
            select(*SUMMARY_COLUMNS)
            .where(*filters)
            .order_by(Title.name, Title.id)
            .offset(bindparam("offset"))
            .limit(bindparam("limit"))
        )
        matching = select(Title.id).where(*filters).limit(bindparam("count_limit")).subquery()
        count = select(func.count()).select_from(matching)
        return DriverQuery.compile(page), DriverQuery.compile(count)

    key = bindparam("key", type_=String)
    keys = bindparam("keys", type_=Title.name_keys.type)
    # Exact names and prefixes: ranges of the title_keys btree, read only as
    # far as the limit (a key row, not a title: a title with two keys of the
    # prefix counts twice towards it).
    by_key = [TitleKey.key == any_(keys)]
    if prefix:
        by_key.append(TitleKey.key.op("^@")(key))
    keyed = [
        (
            select(TitleKey.title_id.label("id"))
            .join(Title, Title.id == TitleKey.title_id)
            .where(way, *filters)
            if filters
            else select(TitleKey.title_id.label("id")).where(way)
        ).limit(bindparam("candidates"))
        for way in by_key
    ]
    ways: list[ColumnElement[bool]] = []
    if substring:
        grams = bindparam("grams", type_=Title.cjk_grams.type)
        ways.append(
            Title.cjk_grams.contains(grams)
            & Title.search_names.like(bindparam("substring", type_=String))
        )
    words = func.to_tsquery("simple", bindparam("tsq", type_=String))
    whole = func.to_tsquery("simple", bindparam("tsq_exact", type_=String))
    word_hit = Title.search.op("@@")(words)
    if tsq:
        ways.append(word_hit)
    # The ranking reads the candidate's own row: its keys and its key lines.
    exact_hit = Title.name_keys.op("&&")(keys)
    prefix_hit = Title.search_names.like(bindparam("prefix", type_=String))
    candidates = union(
        *keyed,
        *(select(Title.id).where(way, *filters).limit(bindparam("candidates")) for way in ways),
    ).subquery("candidates")
    # Cheap on the pool: how near the query is to the title's own name.
    near: Any = func.word_similarity(key, Title.name)
    score: Any = (
        case(
            (word_hit, 1 + func.ts_rank(Title.search, words) + func.ts_rank(Title.search, whole)),
            else_=near,
        )
        if tsq
        else near
    )
    score = (
        case((exact_hit, 20), else_=0) + (case((prefix_hit, 10), else_=0) if prefix else 0) + score
    )
    page = (
        # How many candidates there are, for the total: no second query.
        select(*SUMMARY_COLUMNS, func.count().over().label("candidates_found"))
        .join(candidates, candidates.c.id == Title.id)
        .order_by(score.desc(), Title.name, Title.id)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )
    count = select(func.count()).select_from(candidates)
    return DriverQuery.compile(page), DriverQuery.compile(count)


_query_words = (
    func.unnest(bindparam("words", type_=ARRAY(Text))).table_valued("word").render_derived()
)
_near = (
    select(SearchWord.word)
    .where(SearchWord.word.op("%")(_query_words.c.word))
    .order_by(func.similarity(SearchWord.word, _query_words.c.word).desc())
    .limit(4)
    .correlate(_query_words)
    .scalar_subquery()
)
# Every word's nearest catalog words in one statement (one round trip).
_CORRECTIONS = DriverQuery.compile(select(_query_words.c.word, func.array(_near)))
# The catalog's words a word being typed may become, in the btree's order.
_COMPLETIONS = DriverQuery.compile(
    select(
        func.array(
            select(SearchWord.word)
            .where(SearchWord.word.op("^@")(bindparam("word", type_=String)))
            .order_by(SearchWord.word)
            .limit(COMPLETIONS)
            .scalar_subquery()
        )
    )
)
_TS_WORD = re.compile(r"^\w+$")
_LETTERS = re.compile(r"^[^\W\d_]+$")

Lookup = Callable[[DriverConnection, list[str]], Awaitable[dict[str, tuple[str, ...]]]]


class WordCache:
    """Query word → catalog words (its corrections, its completions), kept for a
    while in this process.

    A word is looked up once rather than on every search that has it. The word
    list only grows, and only on a title's write: this process's writes that add
    a word clear the cache (``forget``, from :meth:`TitleRepository.index_words`),
    another process's are seen within ``ttl`` seconds (a correction or
    completion to a word added elsewhere this minute is all a stale entry
    misses). Never whole results: pages are always read from the titles."""

    def __init__(self, lookup: Lookup, *, ttl: float = 60.0, size: int = 20_000) -> None:
        self.lookup, self.ttl, self.size = lookup, ttl, size
        self._words: dict[str, tuple[float, tuple[str, ...]]] = {}

    def forget(self) -> None:
        self._words.clear()

    async def get(self, conn: DriverConnection, words: list[str]) -> dict[str, tuple[str, ...]]:
        now = time.monotonic()
        out = {w: hit[1] for w in words if (hit := self._words.get(w)) and hit[0] > now}
        missing = [w for w in words if w not in out]
        if missing:
            found = await self.lookup(conn, missing)
            if len(self._words) + len(found) > self.size:
                self._words.clear()  # crude and rare: a catalog has a few thousand words
            for word, near in found.items():
                self._words[word] = (now + self.ttl, near)
            out |= found
        return out


async def _nearest(conn: DriverConnection, words: list[str]) -> dict[str, tuple[str, ...]]:
    return {
        word: tuple(w for w in near or () if w != word and _TS_WORD.match(w))
        for word, near in await _CORRECTIONS.fetch(conn, words=words)
    }


async def _completions(conn: DriverConnection, words: list[str]) -> dict[str, tuple[str, ...]]:
    return {w: tuple(await _COMPLETIONS.fetchval(conn, word=w) or ()) for w in words}


corrections = WordCache(_nearest)
completions = WordCache(_completions)


def forget_words() -> None:
    """The catalog's word list changed: look every word up afresh."""
    corrections.forget()
    completions.forget()


async def _completed(conn: DriverConnection, plan: SearchPlan) -> SearchPlan:
    """The query's last word, being typed, as the catalog's words it begins:
    ``wolf & arc:*`` → ``wolf & (arc | arcadia | archer)``. Whole words are
    one posting list each in the full-text index, where a prefix makes it
    collect every word it begins (``arc:*`` read half the catalog). A CJK word
    stays whole (the substring way finds CJK text inside names); a word of
    digits keeps its prefix (numbers are no catalog words)."""
    if plan.tsq is None or not plan.tsq.endswith(":*"):
        return plan
    head, _, last = plan.tsq[:-2].rpartition(" & ")
    if is_cjk(last):
        whole = last
    elif _LETTERS.match(last):
        more = (await completions.get(conn, [last]))[last]
        whole = "(" + " | ".join(dict.fromkeys([last, *more])) + ")" if more else last
    else:
        return plan
    return dataclasses.replace(plan, tsq=f"{head} & {whole}" if head else whole)


async def _corrected(conn: DriverConnection, key: str) -> SearchPlan | None:
    """``'shingeky no kyojin'`` → the plan of ``'shingeki no kyojin'``, whose
    words also take the next nearest ones (``shingeki | shinigami``): each word
    replaced by the catalog's nearest other words (trigram similarity over
    ``search_words``, a few thousand words rather than every title). None
    when no word has a near one."""
    words = list(dict.fromkeys(_words(key)[:5]))
    near = await corrections.get(conn, [w for w in words if len(w) >= 3 and not is_cjk(w)])
    out = key
    alternatives: list[str] = []
    for word in words:
        nearest = near.get(word, ())
        if not nearest:
            alternatives.append(word)
            continue
        out = re.sub(rf"\b{re.escape(word)}\b", nearest[0], out)
        alternatives.append("(" + " | ".join(nearest) + ")")
    if out == key:
        return None
    tsq = " & ".join(alternatives)
    return dataclasses.replace(SearchPlan.of(out), tsq=tsq, tsq_exact=tsq)


# Driver connections already told to plan every search for its own values.
_CUSTOM_PLANS: weakref.WeakSet[Any] = weakref.WeakSet()


async def _custom_plans(conn: DriverConnection) -> None:
    """After five runs of a prepared statement Postgres may switch to a generic
    plan, blind to the query: a search for a common kanji pair then took 110 ms
    instead of 6. Search statements are planned for their values instead, on
    the catalog's own read connections (set once per connection; the title
    lists' pool sets it when it opens one, studio_catalog.reads)."""
    if not isinstance(conn, AsyncConnection):
        return
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is not None and driver not in _CUSTOM_PLANS:
        await driver.execute("SET plan_cache_mode = force_custom_plan")
        _CUSTOM_PLANS.add(driver)


async def _search_pass(
    conn: DriverConnection,
    f: TitleFilter,
    plan: SearchPlan,
    values: dict[str, Any],
    *,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """One ranked page of a plan and the size of its candidate pool."""
    values = {
        **values,
        "keys": plan.keys,
        "key": plan.key,
        "prefix": plan.prefix,
        "substring": plan.substring,
        "grams": plan.grams,
        "tsq": plan.tsq,
        "tsq_exact": plan.tsq_exact,
        "candidates": max(CANDIDATES, offset + limit),
    }
    page, count = _list_statements(
        genres=bool(f.genres),
        type_=bool(f.type),
        year=f.year is not None,
        q=True,
        prefix=plan.prefix is not None,
        substring=plan.substring is not None,
        tsq=plan.tsq is not None,
    )
    rows = [dict(r) for r in await page.fetch(conn, **values, offset=offset, limit=limit)]
    if rows:
        found = int(rows[0]["candidates_found"])
    elif offset == 0:
        found = 0  # an empty first page: nothing to count
    else:
        found = int(await count.fetchval(conn, **values) or 0)
    for row in rows:
        del row["candidates_found"]
    return rows, found


async def _search_page(
    conn: DriverConnection,
    f: TitleFilter,
    plan: SearchPlan,
    values: dict[str, Any],
    *,
    offset: int,
    limit: int,
    count_cap: int,
) -> tuple[list[dict[str, Any]], int, bool]:
    """A search page. When the query's own words fill no page, its misspelt
    words are corrected to the catalog's nearest words (``search_words``) and
    the corrected query's titles follow the query's own.

    The total is the number of candidates: exact up to CANDIDATES, and past it
    a lower bound (``totalCapped``), since no way of matching reads further."""
    await _custom_plans(conn)
    plan = await _completed(conn, plan)
    pool = max(CANDIDATES, offset + limit)
    rows, found = await _search_pass(conn, f, plan, values, offset=offset, limit=limit)
    corrected = await _corrected(conn, plan.key) if plan.typo and found < offset + limit else None
    if corrected is not None:
        # Everything the query found (fewer than a page's end), then the rest.
        own = (
            rows  # the first page already holds every own match (fewer than a page)
            if offset == 0
            else (await _search_pass(conn, f, plan, values, offset=0, limit=offset + limit))[0]
        )
        more, more_found = await _search_pass(
            conn, f, corrected, values, offset=0, limit=offset + limit
        )
        seen = {r["id"] for r in own}
        merged = own + [r for r in more if r["id"] not in seen]
        rows = merged[offset : offset + limit]
        found = max(len(merged), found + more_found - (len(own) + len(more) - len(merged)))
    capped = found >= pool or found > count_cap
    return rows, min(found, count_cap), capped


async def list_title_page(
    conn: DriverConnection, f: TitleFilter, *, offset: int, limit: int, count_cap: int
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
    values: dict[str, Any] = {
        "genres": list(f.genres),
        "type": f.type,
        "year": f.year,
    }
    if q:
        plan = SearchPlan.of(q)
        return await _search_page(
            conn, f, plan, values, offset=offset, limit=limit, count_cap=count_cap
        )
    page, count = _list_statements(
        genres=bool(f.genres), type_=bool(f.type), year=f.year is not None, q=False
    )
    rows = [dict(r) for r in await page.fetch(conn, **values, offset=offset, limit=limit)]
    if rows and len(rows) < limit:
        return rows, offset + len(rows), False
    counted = int(await count.fetchval(conn, **values, count_limit=count_cap + 1) or 0)
    return rows, min(counted, count_cap), counted > count_cap


RowT = TypeVar("RowT", Title, Episode)


class _EditedRows(Generic[RowT]):
    """A repository of rows edited as objects: an added or changed row is flushed
    and read back, so the caller sees what the database filled in."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: RowT) -> RowT:
        self.session.add(row)
        return await self.save(row)

    async def save(self, row: RowT) -> RowT:
        await self.session.flush()
        await self.session.refresh(row)
        return row


class TitleRepository(_EditedRows[Title]):
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

    async def delete(self, title_id: uuid.UUID) -> list[uuid.UUID]:
        """Delete a title; returns the ids of the episodes that went with it."""
        episode_ids = list(
            (
                await self.session.scalars(select(Episode.id).where(Episode.title_id == title_id))
            ).all()
        )
        await self.session.execute(delete(Title).where(Title.id == title_id))
        return episode_ids

    async def index_words(self, words: list[str]) -> None:
        """Add words to the catalog's word list (for typo corrections and the
        completion of a word being typed)."""
        if not words:
            return
        added = await self.session.scalars(
            pg_insert(SearchWord)
            .values([{"word": w} for w in words])
            .on_conflict_do_nothing(index_elements=["word"])
            .returning(SearchWord.word)
        )
        if added.first() is not None:
            # Before the commit: a search in between may cache the old list,
            # for WordCache.ttl at most.
            forget_words()

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


class EpisodeRepository(_EditedRows[Episode]):
    async def get(self, episode_id: uuid.UUID, *, for_update: bool = False) -> Episode | None:
        stmt = select(Episode).where(Episode.id == episode_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).first()

    async def next_after(self, episode: Episode) -> Episode | None:
        """The episode that follows in the title: the season's next number, else the
        first of the next season."""
        here = select(Season.number).where(Season.id == episode.season_id).scalar_subquery()
        stmt = (
            select(Episode)
            .join(Season, Season.id == Episode.season_id)
            .where(
                Episode.title_id == episode.title_id,
                Episode.id != episode.id,
                or_(
                    Season.number > here,
                    (Season.number == here) & (Episode.number > episode.number),
                ),
            )
            .order_by(Season.number, Episode.number)
            .limit(1)
        )
        return (await self.session.scalars(stmt)).first()

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

    async def apply_media_gone(
        self, episode_id: uuid.UUID, occurred_at: datetime, gone: bool, log: str
    ) -> bool:
        """Media found a ready episode's HLS gone from storage (``gone``), or back.

        Gone turns a ``ready`` episode ``failed`` with ``log`` as the reason; back
        undoes only that (an episode a newer transcode event moved on stays as it
        is). Ordered with the transcode events: a later one wins."""
        state, to = ("ready", "failed") if gone else ("failed", "ready")
        conds = [Episode.transcode_state == state]
        if not gone:
            conds.append(Episode.transcode_log == log)
        result = await self.session.execute(
            update(Episode)
            .where(
                Episode.id == episode_id,
                *conds,
                or_(Episode.transcode_event_at.is_(None), Episode.transcode_event_at < occurred_at),
            )
            .values(
                transcode_state=to,
                transcode_log=log if gone else None,
                transcode_event_at=occurred_at,
                updated_at=func.now(),
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
