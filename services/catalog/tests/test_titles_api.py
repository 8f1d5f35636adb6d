"""The catalog's REST API against real Postgres."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from studio_catalog.repository import SearchPlan, _list_statements
from studio_common.db import normalise_pg_url

PROBLEM = "application/problem+json"


def assert_problem(r, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"] == f"urn:studio:problem:{slug}"
    assert body["status"] == status
    assert body["title"]
    return body


async def test_list_is_camel_case_paged_and_counted(client, make):
    for i in range(3):
        await make.title(
            name=f"Alpha {i}", genres=["action"], posterUrl="https://cdn.example/p.jpg"
        )
    r = await client.get("/api/titles", params={"pageSize": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 3
    assert body["pageSize"] == 2
    assert body["totalPages"] == 2
    assert len(body["items"]) == 2
    item = body["items"][0]
    assert {"id", "slug", "name", "posterUrl", "ratingAvg", "genres"} <= set(item)
    assert item["posterUrl"] == "https://cdn.example/p.jpg"


async def test_pages_are_stable_and_disjoint(client, make):
    # Same name everywhere: only the id tie-breaker keeps the order stable.
    for _ in range(7):
        await make.title(name="Same Name")
    seen: list[str] = []
    for page in (1, 2, 3, 4):
        r = await client.get("/api/titles", params={"page": page, "pageSize": 2})
        seen += [t["id"] for t in r.json()["items"]]
    assert len(seen) == 7
    assert len(set(seen)) == 7
    again = [
        t["id"] for t in (await client.get("/api/titles", params={"pageSize": 7})).json()["items"]
    ]
    assert again == seen


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"pageSize": 101}, "query.pageSize"),
        ({"pageSize": 0}, "query.pageSize"),
        ({"page": 0}, "query.page"),
        ({"page": "x"}, "query.page"),
        ({"type": "podcast"}, "query.type"),
    ],
)
async def test_paging_and_filter_bounds_are_422(client, params, pointer):
    body = assert_problem(await client.get("/api/titles", params=params), 422, "validation")
    assert any(e["pointer"] == pointer for e in body["errors"]), body


async def test_filters_by_genre_type_and_year(client, make):
    a = await make.title(name="Action Show", genres=["action", "drama"], type="series", year=2020)
    await make.title(name="Drama Film", genres=["drama"], type="movie", year=2021)
    await make.title(name="Comedy Show", genres=["comedy"], type="series", year=2020)

    def slugs(r):
        return sorted(t["slug"] for t in r.json()["items"])

    r = await client.get("/api/titles", params={"genre": "drama"})
    assert r.json()["total"] == 2
    r = await client.get("/api/titles", params=[("genre", "drama"), ("genre", "action")])
    assert slugs(r) == [a["slug"]]
    r = await client.get("/api/titles", params={"type": "movie"})
    assert [t["name"] for t in r.json()["items"]] == ["Drama Film"]
    r = await client.get("/api/titles", params={"year": 2020, "type": "series"})
    assert r.json()["total"] == 2
    r = await client.get("/api/titles", params={"genre": "ACTION "})
    assert slugs(r) == [a["slug"]]


async def test_search_by_words_prefix_typo_and_synopsis(client, make):
    courier = await make.title(
        name="Starlight Courier", synopsis="Letters between orbital colonies."
    )
    await make.title(name="Blade of the Tidal Moon", synopsis="A swordswoman hunts a spirit.")

    async def found(q: str) -> list[str]:
        r = await client.get("/api/titles", params={"q": q})
        assert r.status_code == 200
        return [t["slug"] for t in r.json()["items"]]

    assert await found("starlight courier") == [courier["slug"]]
    assert await found("star") == [courier["slug"]]  # prefix
    assert await found("starlite") == [courier["slug"]]  # typo, trigram
    assert await found("orbital") == [courier["slug"]]  # synopsis
    assert await found("zzzzqqq") == []
    assert await found("'; DROP TABLE titles; --") == []  # only words reach the query


async def test_search_ranks_name_matches_first(client, make):
    await make.title(name="Moon Garden", synopsis="Nothing about the other word.")
    best = await make.title(name="Tidal", synopsis="moon moon")
    await make.title(name="Unrelated", synopsis="A tidal wave.")
    r = await client.get("/api/titles", params={"q": "tidal"})
    names = [t["slug"] for t in r.json()["items"]]
    assert names[0] == best["slug"]
    assert len(names) == 2


async def test_search_ranks_whole_words_then_prefixes_then_typos(client, make):
    typo = await make.title(name="Lunor Tides")
    prefix = await make.title(name="Lunaria Tides")
    whole = await make.title(name="Luna Tides")
    r = await client.get("/api/titles", params={"q": "luna"})
    assert [t["slug"] for t in r.json()["items"]] == [whole["slug"], prefix["slug"], typo["slug"]]


async def test_trigram_operators_are_priced_for_the_planner(catalog_settings):
    # Declared as cheap as `=`, `q <% name` made the planner scan every title
    # for a broad word rather than use the indexes (migration 0002).
    engine = create_async_engine(catalog_settings.database_url)
    async with engine.connect() as conn:
        costs = dict(
            (
                await conn.execute(
                    text(
                        "SELECT proname, procost FROM pg_proc WHERE proname IN "
                        "('word_similarity_op', 'word_similarity_commutator_op')"
                    )
                )
            ).all()
        )
    await engine.dispose()
    assert costs == {"word_similarity_op": 200, "word_similarity_commutator_op": 200}


async def test_search_uses_an_index(catalog_settings, make):
    """Every way a search matches (exact name, prefix, words, typo) reads through its index."""
    await make.title(name="Indexed Title")
    plan = SearchPlan.of("indexd")
    page, _ = _list_statements(genres=False, type_=False, year=False, q=True, prefix=True, tsq=True)
    values = {
        "keys": plan.keys,
        "key": plan.key,
        "prefix": plan.prefix,
        "tsq": plan.tsq,
        "tsq_exact": plan.tsq_exact,
        "tsq_typo": "indexd:* | indexed",
        "candidates": 200,
        "offset": 0,
        "limit": 20,
    }
    cjk = SearchPlan.of("巨人")
    cjk_page, _ = _list_statements(
        genres=False, type_=False, year=False, q=True, prefix=True, substring=True, tsq=True
    )
    cjk_values = {
        **values,
        "keys": cjk.keys,
        "key": cjk.key,
        "prefix": cjk.prefix,
        "substring": cjk.substring,
        "grams": cjk.grams,
        "tsq": cjk.tsq,
        "tsq_exact": cjk.tsq_exact,
    }
    conn = await asyncpg.connect(normalise_pg_url(catalog_settings.database_url))
    try:
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch("EXPLAIN " + page.sql, *page._args(values))
        cjk_rows = await conn.fetch("EXPLAIN " + cjk_page.sql, *cjk_page._args(cjk_values))
    finally:
        await conn.close()
    plan_text = "\n".join(r[0] for r in rows)
    # Exact names and prefixes: ranges of the title_keys btree.
    assert plan_text.count("pk_title_keys") == 2
    assert "Seq Scan on title_keys" not in plan_text
    assert "ix_titles_search" in plan_text
    assert "Seq Scan on titles" not in plan_text
    cjk_text = "\n".join(r[0] for r in cjk_rows)
    assert "ix_titles_cjk_grams" in cjk_text
    assert "Seq Scan on titles" not in cjk_text


async def test_title_details_with_seasons_and_episodes(client, make):
    title = await make.title(name="Detailed")
    s2 = await make.season(title["id"], 2)
    s1 = await make.season(title["id"], 1)
    await make.episode(s1["id"], 2)
    await make.episode(s1["id"], 1)
    await make.episode(s2["id"], 1)
    r = await client.get(f"/api/titles/{title['slug']}")
    assert r.status_code == 200
    body = r.json()
    assert [s["number"] for s in body["seasons"]] == [1, 2]
    assert [e["number"] for e in body["seasons"][0]["episodes"]] == [1, 2]
    ep = body["seasons"][0]["episodes"][0]
    assert ep["transcodeState"] == "queued"
    assert "sourceKey" not in ep  # storage keys are for editors only
    assert "transcodeLog" not in ep


async def test_unknown_things_are_404_problems(client):
    assert_problem(await client.get("/api/titles/no-such-title"), 404, "not-found")
    assert_problem(await client.get(f"/api/episodes/{uuid.uuid4()}"), 404, "not-found")
    assert_problem(await client.get("/api/episodes/not-a-uuid"), 422, "validation")
    assert_problem(await client.get("/api/nowhere"), 404, "not-found")


async def test_create_update_patch_delete_title(client, make, auth):
    title = await make.title(name="Before", genres=["Action"], languages=["ja", "en-US"])
    assert title["genres"] == ["action"]
    body = {
        "slug": title["slug"],
        "name": "After",
        "type": "movie",
        "year": 2001,
        "ratingAvg": 9.5,
    }
    r = await client.put(f"/api/admin/titles/{title['id']}", json=body, headers=auth.editor)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "After"
    assert r.json()["type"] == "movie"

    r = await client.patch(
        f"/api/admin/titles/{title['id']}", json={"synopsis": "New."}, headers=auth.admin
    )
    assert r.status_code == 200
    assert r.json()["synopsis"] == "New."
    assert r.json()["name"] == "After"  # untouched by a partial update

    r = await client.delete(f"/api/admin/titles/{title['id']}", headers=auth.editor)
    assert r.status_code == 204
    assert_problem(await client.get(f"/api/titles/{title['slug']}"), 404, "not-found")
    assert_problem(
        await client.delete(f"/api/admin/titles/{title['id']}", headers=auth.editor),
        404,
        "not-found",
    )


async def test_deleting_a_title_cascades_to_seasons_and_episodes(client, make, auth):
    title = await make.title()
    season = await make.season(title["id"])
    episode = await make.episode(season["id"])
    r = await client.delete(f"/api/admin/titles/{title['id']}", headers=auth.editor)
    assert r.status_code == 204
    assert_problem(await client.get(f"/api/episodes/{episode['id']}"), 404, "not-found")


async def test_deleting_a_season_removes_its_episodes(client, make, auth):
    title = await make.title()
    season = await make.season(title["id"])
    episode = await make.episode(season["id"])
    assert (
        await client.delete(f"/api/admin/seasons/{season['id']}", headers=auth.editor)
    ).status_code == 204
    assert_problem(await client.get(f"/api/episodes/{episode['id']}"), 404, "not-found")
    assert (await client.get(f"/api/titles/{title['slug']}")).json()["seasons"] == []


async def test_constraint_violations_are_409(client, make, auth):
    title = await make.title()
    dup = {"slug": title["slug"], "name": "Other", "type": "series"}
    body = assert_problem(
        await client.post("/api/admin/titles", json=dup, headers=auth.editor), 409, "conflict"
    )
    assert body["constraint"] == "uq_titles_slug"

    season = await make.season(title["id"], 1)
    r = await client.post(
        "/api/admin/seasons", json={"titleId": title["id"], "number": 1}, headers=auth.editor
    )
    assert assert_problem(r, 409, "conflict")["constraint"] == "uq_seasons_title_id_number"

    await make.episode(season["id"], 1)
    r = await client.post(
        "/api/admin/episodes",
        json={"seasonId": season["id"], "number": 1, "name": "x", "sourceKey": await make.source()},
        headers=auth.headers("editor", make.editor_sub),
    )
    assert assert_problem(r, 409, "conflict")["constraint"] == "uq_episodes_season_id_number"

    other = await make.title()
    r = await client.put(
        f"/api/admin/titles/{other['id']}",
        json={"slug": title["slug"], "name": "x", "type": "series"},
        headers=auth.editor,
    )
    assert_problem(r, 409, "conflict")


@pytest.mark.parametrize(
    "body",
    [
        {"slug": "Bad Slug", "name": "x", "type": "series"},
        {"slug": "ok", "name": "", "type": "series"},
        {"slug": "ok", "name": "x", "type": "podcast"},
        {"slug": "ok", "name": "x", "type": "series", "year": 1800},
        {"slug": "ok", "name": "x", "type": "series", "ratingAvg": 11},
        {"slug": "ok", "name": "x", "type": "series", "posterUrl": "javascript:alert(1)"},
        {"slug": "ok", "name": "x", "type": "series", "unknownField": 1},
        {"slug": "ok", "name": "x" * 301, "type": "series"},
    ],
)
async def test_bad_titles_are_422(client, auth, body):
    assert_problem(
        await client.post("/api/admin/titles", json=body, headers=auth.editor), 422, "validation"
    )


async def test_malformed_json_is_422_not_500(client, auth):
    r = await client.post(
        "/api/admin/titles",
        content=b"{not json",
        headers={**auth.editor, "content-type": "application/json"},
    )
    assert_problem(r, 422, "validation")


@pytest.mark.parametrize(
    "source_key",
    [
        "../etc/passwd",
        "/uploads/a.mp4",
        "uploads/../x.mp4",
        "posters/a.jpg",
        "uploads//a.mp4",
        "uploads/",
        "uploads/x.exe",
        "uploads/never-uploaded/x.mp4",
        f"uploads/{uuid.uuid4()}/a b.mp4",
        f"uploads/{uuid.uuid4()}/sub/a.mp4",
        f"posters/{uuid.uuid4()}/a.jpg",
    ],
)
async def test_episode_source_keys_are_validated(client, make, auth, source_key):
    title = await make.title()
    season = await make.season(title["id"])
    r = await client.post(
        "/api/admin/episodes",
        json={"seasonId": season["id"], "number": 1, "name": "x", "sourceKey": source_key},
        headers=auth.editor,
    )
    assert_problem(r, 422, "source-key-invalid")


async def test_references_to_missing_parents_are_422(client, auth):
    r = await client.post(
        "/api/admin/seasons", json={"titleId": str(uuid.uuid4()), "number": 1}, headers=auth.editor
    )
    assert_problem(r, 422, "unknown-reference")
    r = await client.post(
        "/api/admin/episodes",
        json={
            "seasonId": str(uuid.uuid4()),
            "number": 1,
            "name": "x",
            "sourceKey": "uploads/x.mp4",
        },
        headers=auth.editor,
    )
    assert_problem(r, 422, "unknown-reference")


async def test_episode_admin_view_and_patch(client, make, auth):
    title = await make.title()
    season = await make.season(title["id"])
    key = await make.source("ep3.mkv")
    ep = await make.episode(season["id"], 3, sourceKey=key)
    assert ep["transcodeState"] == "queued"
    assert ep["titleId"] == title["id"]
    r = await client.get(f"/api/admin/episodes/{ep['id']}", headers=auth.editor)
    assert r.json()["sourceKey"] == key
    r = await client.patch(
        f"/api/admin/episodes/{ep['id']}", json={"name": "Renamed"}, headers=auth.editor
    )
    assert r.json()["name"] == "Renamed"
    r = await client.patch(
        f"/api/admin/episodes/{ep['id']}", json={"name": None}, headers=auth.editor
    )
    assert_problem(r, 422, "validation")
    assert (await client.get(f"/api/episodes/{ep['id']}")).json()["name"] == "Renamed"
    assert (
        await client.delete(f"/api/admin/episodes/{ep['id']}", headers=auth.editor)
    ).status_code == 204
    assert_problem(await client.get(f"/api/episodes/{ep['id']}"), 404, "not-found")


async def test_totals_stop_at_the_count_cap(catalog_settings, make):
    from studio_catalog.main import create_app
    from studio_common.testing.plugin import serve_app

    for i in range(7):
        await make.title(name=f"Capped {i}", genres=["capped"])
    capped = create_app(
        catalog_settings.model_copy(
            update={"total_count_cap": 3, "run_consumers": False, "run_outbox_relay": False}
        )
    )
    async with serve_app(capped) as client:
        first = (await client.get("/api/titles", params={"genre": "capped", "pageSize": 2})).json()
        assert (first["total"], first["totalCapped"], first["totalPages"]) == (3, True, 2)
        assert len(first["items"]) == 2
        # Pages past the capped total still work, and a page that is not full
        # knows the exact total without counting.
        last = (
            await client.get("/api/titles", params={"genre": "capped", "pageSize": 2, "page": 4})
        ).json()
        assert [t["name"] for t in last["items"]] == ["Capped 6"]
        assert (last["total"], last["totalCapped"]) == (7, False)
        under = (await client.get("/api/titles", params={"genre": "capped", "pageSize": 20})).json()
        assert (under["total"], under["totalCapped"]) == (7, False)


@pytest.mark.parametrize("params", [{"q": "a\x00b"}, {"genre": "drama\x00"}, {"q": "\x00"}])
async def test_nul_in_a_filter_is_a_422_problem(client, params):
    r = await client.get("/api/titles", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:studio:problem:validation"


@pytest.mark.parametrize("public", ["yes", "true", 1, 0, "false"])
async def test_an_episode_is_published_only_by_a_json_boolean(client, make, auth, public):
    title = await make.title()
    season = await make.season(title["id"])
    ep = await make.episode(season["id"], 1)
    assert ep["public"] is False
    url = f"/api/admin/episodes/{ep['id']}"
    r = await client.patch(url, json={"public": public}, headers=auth.editor)
    assert assert_problem(r, 422, "validation")["errors"][0]["pointer"] == "body.public"
    assert (await client.get(url, headers=auth.editor)).json()["public"] is False
    body = {"seasonId": season["id"], "number": 2, "name": "x", "sourceKey": "uploads/x.mp4"}
    r = await client.post(
        "/api/admin/episodes", json={**body, "public": public}, headers=auth.editor
    )
    assert_problem(r, 422, "validation")


@pytest.mark.parametrize(
    ("field", "value"),
    [("year", "2020"), ("year", True), ("year", 2020.0), ("ratingAvg", "7.5"), ("ratingAvg", True)],
)
async def test_title_numbers_are_json_numbers(client, auth, field, value):
    body = {"slug": f"strict-{uuid.uuid4().hex[:6]}", "name": "x", "type": "series", field: value}
    r = await client.post("/api/admin/titles", json=body, headers=auth.editor)
    assert assert_problem(r, 422, "validation")["errors"][0]["pointer"] == f"body.{field}"


async def test_season_numbers_are_json_integers(client, make, auth):
    title = await make.title()
    for number in ("1", True, 1.0):
        r = await client.post(
            "/api/admin/seasons",
            json={"titleId": title["id"], "number": number},
            headers=auth.editor,
        )
        assert assert_problem(r, 422, "validation")["errors"][0]["pointer"] == "body.number"


async def test_anonymous_public_reads_are_briefly_cacheable_and_signed_in_ones_never(
    client, make, auth
):
    title = await make.title()
    season = await make.season(title["id"])
    episode = await make.episode(season["id"])
    for path in ("/api/titles", f"/api/titles/{title['slug']}", f"/api/episodes/{episode['id']}"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "public, max-age=15", path
        vary = {v.strip().lower() for v in r.headers["vary"].split(",")}
        # The answer depends on the language asked for and on who asks.
        assert {"accept-language", "authorization"} <= vary, path
        signed_in = await client.get(path, headers=auth.viewer)
        assert signed_in.status_code == 200, path
        assert signed_in.headers["cache-control"] == "no-store", path
