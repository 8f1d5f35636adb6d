"""GET /api/titles answered before routing (studio_catalog.api.listing) says exactly
what the declared route says: same status, body bytes and headers, for every
way of listing and searching; what it does not take goes to the route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from studio_catalog.api.listing import TitleListFastPath, parse
from studio_catalog.config import CatalogSettings
from studio_catalog.main import create_app

# What the route and the caching middleware decide; the request id differs per call.
HEADERS = ("content-type", "content-length", "cache-control", "vary")


@pytest.fixture
async def declared(catalog_app: Any, catalog_settings: CatalogSettings) -> AsyncIterator[Any]:
    """The same service without the fast path, on the running app's runtime."""
    app = create_app(catalog_settings.model_copy(update={"list_fast_path": False}))
    for name in ("runtime", "database", "verifier", "roles"):
        setattr(app.state, name, getattr(catalog_app.state, name))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The query strings the fast path answered itself."""
    seen: list[str] = []
    real = TitleListFastPath.answer

    async def spy(self: TitleListFastPath, request: Any, matched: Any) -> Any:
        seen.append(request.url.query)
        return await real(self, request, matched)

    monkeypatch.setattr(TitleListFastPath, "answer", spy)
    return seen


@pytest.fixture
async def shelf(make: Any) -> None:
    specs = [
        ("Shingeki no Kyojin", "Attack on Titan", "進撃の巨人", ["AoT"], 2013, 8.5, ["action"]),
        ("Shōnen Ashibe", "Boy Ashibe", "少年アシベ", [], 1988, 6.0, ["comedy"]),
        ("Naruto", None, "ナルト", [], 2002, None, ["action", "ninja"]),
        ("Kimi no Na wa.", 'Your "Name".', "君の名は。", [], 2016, 9.25, ["drama"]),
        (
            "Titan no Uta",
            "Song of the Titan",
            None,
            ["Back\\slash <&>", "Ünïcode ✓"],
            None,
            0.1,
            [],
        ),
        ("Theater of Stars", None, None, [], 1999, 10.0, ["drama", "space"]),
    ]
    for romaji, english, native, synonyms, year, rating, genres in specs:
        await make.title(
            name=romaji,
            type="movie" if year == 2016 else "series",
            year=year,
            ratingAvg=rating,
            genres=genres,
            languages=["ja", "en"],
            posterUrl="https://img.example/p.jpg" if rating else None,
            names=make.names(romaji, english, native, *synonyms),
        )


LISTS = [
    "",
    "page=2&pageSize=2",
    "pageSize=100",
    "page=99&pageSize=5",
    "genre=action",
    "genre=Action&genre=%20ninja%20",
    "genre=&genre=drama",
    "type=movie",
    "year=2013",
    "genre=drama&type=series&year=1999",
    "lang=en",
    "lang=ja-JP",
    "lang=fr",
    "q=",
    "q=%20%20",
]
SEARCHES = [
    "q=shingeki",  # a romaji word
    "q=Shingeki%20no%20Kyojin",  # an exact name
    "q=attack%20on",  # two words, the last being typed
    "q=shingeky%20no%20kyojin",  # a typo
    "q=Your%20Name",  # English
    "q=%E5%B7%A8%E4%BA%BA",  # kanji inside a name: 巨人
    "q=%E3%81%97%E3%82%87%E3%81%86%E3%81%AD%E3%82%93",  # kana: しょうねん
    "q=shounen",  # a long vowel spelt ou
    "q=titan&lang=en",
    "q=titan&pageSize=1&page=2",
    "q=the",  # a stop word alone
    "q=x",  # one character
    "q=zzzzqqq",  # nothing
    "q=naruto&q=titan",  # a repeated scalar: the last one
    "q=ninja&genre=action&type=series",
]
ODD = [
    "pageSize=1000",  # over the service's maximum
    "pageSize=0",
    "page=0",
    "page=100001",
    "page=01",  # pydantic's reading of other spellings is the route's call
    "page=%2B2",
    "page=",
    "year=1800",
    "year=abc",
    "year=",
    "type=Series",
    "type=",
    "lang=x",
    "lang=" + "en-" * 12 + "a",
    "q=" + "a" * 201,
    "&".join(["genre=g"] * 11),
    "sort=name",  # a parameter the route does not know
    "q=naruto&utm_source=x",
]


async def _both(
    client: httpx.AsyncClient, declared: httpx.AsyncClient, query: str, **kw: Any
) -> httpx.Response:
    fast = await client.get(f"/api/titles?{query}", **kw)
    slow = await declared.get(f"/api/titles?{query}", **kw)
    assert fast.status_code == slow.status_code, query
    assert fast.content == slow.content, query
    assert {h: fast.headers.get_list(h) for h in HEADERS} == {
        h: slow.headers.get_list(h) for h in HEADERS
    }, query
    return fast


@pytest.mark.parametrize("query", LISTS + SEARCHES)
async def test_lists_and_searches_are_answered_as_the_route_answers_them(
    client, declared, answered, shelf, query
):
    reply = await _both(client, declared, query)
    assert reply.status_code == 200
    assert answered == [query]


async def test_found_titles_are_the_same_bytes(client, declared, answered, shelf):
    reply = await _both(client, declared, "q=titan")
    items = reply.json()["items"]
    assert {i["name"] for i in items} >= {"Shingeki no Kyojin", "Titan no Uta"}
    # Non-ASCII, quotes, a backslash and floats written the same way on both paths.
    reply = await _both(client, declared, "pageSize=20")
    assert "Ünïcode ✓" in reply.text
    assert '\\"Name\\"' in reply.text
    assert "Back\\\\slash <&>" in reply.text
    assert '"ratingAvg":10.0' in reply.text
    assert '"ratingAvg":0.1' in reply.text


@pytest.mark.parametrize(
    "accept",
    ["en", "ja,en;q=0.5", "fr;q=0.2, en;q=0.9", "*", "en;q=x", "", "x" * 500],
)
async def test_the_viewers_language_from_accept_language(client, declared, answered, shelf, accept):
    reply = await _both(client, declared, "q=titan", headers={"Accept-Language": accept})
    assert reply.status_code == 200
    assert answered == ["q=titan"]
    assert reply.headers["vary"].lower().startswith("accept-language")


async def test_a_signed_in_caller_gets_the_same_page_not_stored(
    client, declared, answered, shelf, auth
):
    reply = await _both(client, declared, "q=naruto", headers=auth.headers("viewer", "v1"))
    assert reply.status_code == 200
    assert answered == ["q=naruto"]
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("query", ODD)
async def test_what_the_fast_path_does_not_take_the_route_answers(
    client, declared, answered, shelf, query
):
    reply = await _both(client, declared, query)
    assert answered == []
    if reply.status_code != 200:
        assert reply.status_code == 422
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["type"] == "urn:studio:problem:validation"


async def test_an_overlong_accept_language_is_the_routes_422(client, declared, answered, shelf):
    reply = await _both(client, declared, "q=titan", headers={"Accept-Language": "x" * 501})
    assert reply.status_code == 422
    assert answered == []


async def test_other_methods_and_paths_go_through_routing(client, answered, shelf):
    assert (await client.post("/api/titles")).status_code == 405
    assert (await client.get("/api/titles/")).status_code == 404
    assert answered == []


def test_parse_reads_parameters_as_the_route_does():
    q = parse(b"q=%20Naruto%20&genre=Action&genre=&genre=%20Ninja&page=3&pageSize=7", None, 100)
    assert q is not None
    assert (q.filter.q, q.filter.genres, q.page, q.size) == ("Naruto", ("action", "ninja"), 3, 7)
    assert parse(b"pageSize=101", None, 100) is None
    assert parse(b"pageSize=100", None, 100) is not None
    assert parse(b"", b"ja, en;q=0.8", 100).language == "ja"  # type: ignore[union-attr]
    assert parse(b"lang=en", b"ja", 100).language == "en"  # type: ignore[union-attr]
