"""One search over every name of a title, by query class, against real Postgres."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from studio_catalog import repository
from studio_catalog.repository import SearchPlan


@pytest.fixture
async def shelf(make) -> dict[str, str]:
    """A few titles with real naming patterns; returns name → slug."""
    specs = {
        "aot": ("Shingeki no Kyojin", "Attack on Titan", "進撃の巨人", "AoT", "SnK"),
        "aot2": (
            "Shingeki no Kyojin: The Final Season",
            "Attack on Titan: The Final Season",
            "進撃の巨人 The Final Season",
        ),
        "titan": ("Titan no Uta", "Song of the Titan", None),
        "shonen": ("Shōnen Ashibe", "Boy Ashibe", "少年アシベ"),
        "naruto": ("Naruto", None, "ナルト"),
        "kimi": ("Kimi no Na wa.", "Your Name.", "君の名は。"),
        "the": ("The", None, None),
        "theater": ("Theater of Stars", None, None),
    }
    out = {}
    for key, (romaji, english, native, *syn) in specs.items():
        title = await make.title(name=romaji, names=make.names(romaji, english, native, *syn))
        out[key] = title["slug"]
    return out


async def search(client, q: str, **params) -> list[str]:
    r = await client.get("/api/titles", params={"q": q, **params})
    assert r.status_code == 200, r.text
    return [t["slug"] for t in r.json()["items"]]


async def test_romaji_english_and_synonym_each_find_the_title(client, shelf):
    assert (await search(client, "Shingeki no Kyojin"))[0] == shelf["aot"]
    assert (await search(client, "attack on titan"))[0] == shelf["aot"]
    assert (await search(client, "AoT"))[0] == shelf["aot"]
    assert (await search(client, "snk")) == [shelf["aot"]]


async def test_exact_then_prefix_then_words(client, shelf):
    # Exact name, then the name it starts, then a word inside another name.
    found = await search(client, "attack on titan")
    assert found[:2] == [shelf["aot"], shelf["aot2"]]
    found = await search(client, "titan")
    assert found[0] == shelf["titan"]  # a name starting with the word
    assert set(found) == {shelf["titan"], shelf["aot"], shelf["aot2"]}


async def test_words_after_a_colon(client, shelf):
    assert (await search(client, "final season")) == [shelf["aot2"]]


async def test_a_typo(client, shelf):
    assert (await search(client, "shingeky"))[0] in {shelf["aot"], shelf["aot2"]}
    assert (await search(client, "narutto"))[0] == shelf["naruto"]


@pytest.mark.parametrize("q", ["Shōnen Ashibe", "shounen ashibe", "shonen ashibe", "shōnen"])
async def test_long_vowels_written_any_way(client, shelf, q):
    assert (await search(client, q))[0] == shelf["shonen"]


async def test_kanji_substring(client, shelf):
    assert set(await search(client, "巨人")) == {shelf["aot"], shelf["aot2"]}
    assert (await search(client, "進撃の巨人"))[0] == shelf["aot"]
    assert await search(client, "の名") == [shelf["kimi"]]
    assert await search(client, "少年") == [shelf["shonen"]]


@pytest.mark.parametrize("q", ["なると", "ナルト", "ﾅﾙﾄ"])
async def test_kana_finds_romaji_and_native(client, shelf, q):
    assert await search(client, q) == [shelf["naruto"]]


async def test_kana_reading_of_a_romaji_title(client, shelf):
    assert (await search(client, "しんげき"))[0] in {shelf["aot"], shelf["aot2"]}
    assert (await search(client, "しんげきのきょじん"))[0] in {shelf["aot"], shelf["aot2"]}
    assert (await search(client, "しょうねん")) == [shelf["shonen"]]
    assert (await search(client, "きみのなは"))[0] == shelf["kimi"]


async def test_one_character_and_stop_words_match_whole_names_only(client, shelf):
    assert await search(client, "the") == [shelf["the"]]
    assert await search(client, "t") == []
    assert await search(client, "no") == []
    assert await search(client, "巨") == []


@pytest.mark.parametrize("q", ["ー", "っ", "\u0301", "ﾞ", "%", "_", "'", "x" * 200, "の" * 50])
async def test_odd_queries_answer_200(client, shelf, q):
    r = await client.get("/api/titles", params={"q": q})
    assert r.status_code == 200, r.text


def test_short_and_stop_word_queries_plan_no_scan():
    for q in ("a", "the", "no", "of the", "巨", "x"):
        plan = SearchPlan.of(q)
        assert (plan.prefix, plan.substring, plan.tsq, plan.typo) == (None, None, None, False), q


async def test_search_pages_and_totals_over_names(client, shelf):
    r = await client.get("/api/titles", params={"q": "titan", "pageSize": 1, "page": 2})
    body = r.json()
    assert body["total"] == 3
    assert len(body["items"]) == 1


async def test_typos_are_looked_for_only_when_words_fill_no_page(client, make):
    word = await make.title(name="Starlite Express")
    typo = await make.title(name="Starlight Courier")
    assert await search(client, "starlite") == [word["slug"], typo["slug"]]
    r = await client.get("/api/titles", params={"q": "starlite", "pageSize": 1})
    assert [t["slug"] for t in r.json()["items"]] == [word["slug"]]
    assert r.json()["total"] == 1  # the typo match was never looked for


async def test_a_broad_search_ranks_a_bounded_pool_and_says_its_total_is_a_floor(
    client, make, monkeypatch
):
    monkeypatch.setattr(repository, "CANDIDATES", 3)
    for i in range(5):
        await make.title(name=f"Alpha {i}")
    r = await client.get("/api/titles", params={"q": "alpha", "pageSize": 2})
    body = r.json()
    assert (body["total"], body["totalCapped"]) == (3, True)
    # A deeper page widens the pool to reach it.
    r = await client.get("/api/titles", params={"q": "alpha", "pageSize": 2, "page": 3})
    assert len(r.json()["items"]) == 1


async def test_searches_are_planned_for_their_values(catalog_settings, make):
    await make.title(name="Planned")
    engine = create_async_engine(catalog_settings.database_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await repository.list_title_page(
            conn, repository.TitleFilter(q="planned"), offset=0, limit=20, count_cap=100
        )
        mode = (await conn.execute(text("SHOW plan_cache_mode"))).scalar()
    await engine.dispose()
    assert mode == "force_custom_plan"


async def _title_keys(catalog_settings, title_id: str) -> tuple[set[str], set[str]]:
    """(title_keys of the title, its name_keys)."""
    engine = create_async_engine(catalog_settings.database_url)
    async with engine.connect() as conn:
        keyed = set(
            (
                await conn.execute(
                    text("SELECT key FROM catalog.title_keys WHERE title_id = :id"),
                    {"id": title_id},
                )
            ).scalars()
        )
        names = (
            await conn.execute(
                text("SELECT name_keys FROM catalog.titles WHERE id = :id"), {"id": title_id}
            )
        ).scalar()
    await engine.dispose()
    return keyed, set(names or ())


async def test_title_keys_follow_every_write_of_the_names(client, make, auth, catalog_settings):
    title = await make.title(
        name="Kaze no Uta", names=make.names("Kaze no Uta", "Song of Wind", None)
    )
    keyed, name_keys = await _title_keys(catalog_settings, title["id"])
    assert keyed == name_keys
    assert {"kaze no uta", "song of wind", "songofwind"} <= keyed
    url = f"/api/admin/titles/{title['id']}"
    r = await client.patch(
        url, json={"names": make.names("Kaze no Uta", None, None, "KnU")}, headers=auth.editor
    )
    assert r.status_code == 200, r.text
    keyed, name_keys = await _title_keys(catalog_settings, title["id"])
    assert keyed == name_keys
    assert "knu" in keyed
    assert "song of wind" not in keyed
    assert await search(client, "song of w") == []
    assert await search(client, "knu") == [title["slug"]]
    r = await client.delete(url, headers=auth.editor)
    assert r.status_code == 204, r.text
    assert (await _title_keys(catalog_settings, title["id"]))[0] == set()


async def test_the_last_word_is_completed_to_the_catalogs_words(client, make):
    inside = await make.title(name="Blue Starlight Story")
    assert await search(client, "blue starl") == [inside["slug"]]  # a word inside the name
    assert await search(client, "story blu") == [inside["slug"]]  # the last word only
    assert await search(client, "a tale of starlight") == []


async def test_a_word_added_by_a_write_is_corrected_to_at_once(client, make):
    assert await search(client, "zephyrr tales") == []  # looked up, and nothing near
    title = await make.title(name="Zephyr Tales")
    assert await search(client, "zephyrr tales") == [title["slug"]]
    assert await search(client, "zephy") == [title["slug"]]


@pytest.mark.parametrize(
    "hexdigits",
    # A slug's random part as the e2e titles have it ("E2E player-<8 hex>"):
    # Postgres' parser reads "-12345678" as a signed number and "1e5…" as a
    # float, where the query's words are what \w+ finds.
    ["12345678", "1e5a7bcd", "90e12345", "abcdef12", "0a1b2c3d"],
)
async def test_names_with_hyphens_and_numbers_are_found_by_their_words(client, make, hexdigits):
    slug = f"player-{hexdigits}"
    other = await make.title(slug=f"cli-{hexdigits[::-1]}", name=f"E2E cli-{hexdigits[::-1]}")
    title = await make.title(slug=slug, name=f"E2E {slug}")
    for q in (slug, f"player {hexdigits}", hexdigits, f"E2E {slug}"):
        assert (await search(client, q))[:1] == [title["slug"]], q
    assert (await search(client, f"cli-{hexdigits[::-1]}"))[:1] == [other["slug"]]


@pytest.mark.parametrize(
    ("name", "q"),
    [
        ("Mobile Suit Gundam F-91", "gundam f-91"),
        ("Mobile Suit Gundam F-91", "f 91"),
        ("Steins;Gate 0", "steins gate 0"),
        ("Version 2.0 Story", "version 2 0"),
        ("Spider-Man: Into the Verse", "spider man"),
    ],
)
async def test_punctuation_inside_a_name_splits_words_as_a_query_does(client, make, name, q):
    title = await make.title(name=name)
    assert (await search(client, q))[:1] == [title["slug"]]
