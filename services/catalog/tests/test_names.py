"""A title's names: validation, details and summaries, the viewer's language, events."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from studio_catalog.names import (
    display_name,
    fold,
    kana_to_romaji,
    keys_of,
    normalize_name,
    preferred_language,
)
from studio_common.events import subject_for
from studio_common.testing.jetstream import envelope_of, stream_messages, wait_until

from .test_titles_api import assert_problem

AOT = [
    {"kind": "romaji", "language": "ja", "name": "Shingeki no Kyojin"},
    {"kind": "english", "language": "en", "name": "Attack on Titan"},
    {"kind": "native", "language": "ja", "name": "進撃の巨人"},
    {"kind": "synonym", "language": "en", "name": "AoT"},
    {"kind": "synonym", "language": "en", "name": "SnK"},
]


async def test_names_are_stored_and_returned_in_details_and_summaries(client, make):
    title = await make.title(name="Shingeki no Kyojin", names=AOT)
    assert title["names"] == AOT
    r = await client.get(f"/api/titles/{title['slug']}")
    assert r.json()["names"] == AOT
    r = await client.get("/api/titles")
    assert r.json()["items"][0]["names"] == AOT


async def test_names_are_nfkc_normalised(make):
    title = await make.title(
        names=[
            {
                "kind": "english",
                "language": "EN",
                "name": "  \uff26\uff55\uff4c\uff4c\u3000\uff37idth  ",
            }
        ]
    )
    assert title["names"] == [{"kind": "english", "language": "en", "name": "Full Width"}]


@pytest.mark.parametrize(
    "names",
    [
        [{"kind": "romaji", "language": "ja", "name": "A"}] * 2,  # one romaji per language
        [
            {"kind": "native", "language": "ja", "name": "甲"},
            {"kind": "native", "language": "ja", "name": "乙"},
        ],
        [
            {"kind": "synonym", "language": "en", "name": "AoT"},
            {"kind": "synonym", "language": "en", "name": "aot"},
        ],  # the same synonym twice
        [{"kind": "nickname", "language": "en", "name": "A"}],
        [{"kind": "english", "language": "english", "name": "A"}],
        [{"kind": "english", "language": "en", "name": ""}],
        [{"kind": "english", "language": "en", "name": "   "}],
        [{"kind": "english", "language": "en", "name": "x" * 301}],
        [{"kind": "english", "language": "en", "name": "bell\x07"}],
        [{"kind": "english", "language": "en", "name": "nul\x00"}],
        [{"kind": "english", "language": "en", "name": "A", "extra": 1}],
        [{"kind": "english", "language": "en", "name": 5}],
        [{"kind": "synonym", "language": "en", "name": f"s{i}"} for i in range(31)],
        {"kind": "english", "language": "en", "name": "A"},
    ],
)
async def test_bad_names_are_422_problems(client, auth, names):
    body = {"slug": f"bad-{uuid.uuid4().hex[:6]}", "name": "X", "type": "series", "names": names}
    r = await client.post("/api/admin/titles", json=body, headers=auth.editor)
    assert_problem(r, 422, "validation")


async def test_names_are_replaced_by_put_and_patch_and_kept_otherwise(client, make, auth):
    title = await make.title(names=AOT)
    url = f"/api/admin/titles/{title['id']}"
    r = await client.patch(url, json={"year": 2013}, headers=auth.editor)
    assert r.json()["names"] == AOT
    r = await client.patch(url, json={"names": None}, headers=auth.editor)
    assert r.json()["names"] == AOT
    r = await client.patch(url, json={"names": AOT[:1]}, headers=auth.editor)
    assert r.json()["names"] == AOT[:1]
    body = {"slug": title["slug"], "name": "Renamed", "type": "series"}
    r = await client.put(url, json=body, headers=auth.editor)
    assert r.json()["names"] == []
    r = await client.patch(url, json={"names": AOT + AOT[:1]}, headers=auth.editor)
    assert_problem(r, 422, "validation")


async def test_viewers_cannot_edit_names(client, make, auth):
    title = await make.title()
    r = await client.patch(
        f"/api/admin/titles/{title['id']}", json={"names": AOT}, headers=auth.viewer
    )
    assert_problem(r, 403, "forbidden")


@pytest.mark.parametrize(
    ("params", "headers", "shown"),
    [
        ({}, {}, "Shingeki no Kyojin"),
        ({"lang": "en"}, {}, "Attack on Titan"),
        ({"lang": "en-GB"}, {}, "Attack on Titan"),
        ({"lang": "ja"}, {}, "進撃の巨人"),
        ({"lang": "fr"}, {}, "Shingeki no Kyojin"),
        ({}, {"Accept-Language": "ja-JP,en;q=0.8"}, "進撃の巨人"),
        ({}, {"Accept-Language": "fr;q=0.9, en"}, "Attack on Titan"),
        ({"lang": "de"}, {"Accept-Language": "en"}, "Shingeki no Kyojin"),  # lang wins
        ({}, {"Accept-Language": "*"}, "Shingeki no Kyojin"),
    ],
)
async def test_display_name_follows_the_viewers_language(client, make, params, headers, shown):
    title = await make.title(name="AoT primary", names=AOT)
    r = await client.get(f"/api/titles/{title['slug']}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == shown
    assert r.json()["names"] == AOT  # the others alongside
    r = await client.get("/api/titles", params=params, headers=headers)
    assert r.json()["items"][0]["displayName"] == shown


async def test_a_title_without_names_shows_its_own(client, make):
    title = await make.title(name="Plain")
    r = await client.get("/api/titles", params={"lang": "ja"})
    assert r.json()["items"][0]["displayName"] == "Plain"
    r = await client.get(f"/api/titles/{title['slug']}", params={"lang": "en"})
    assert r.json()["displayName"] == "Plain"


async def test_a_malformed_lang_is_a_422_problem(client, make):
    r = await client.get("/api/titles", params={"lang": "en;drop"})
    assert_problem(r, 422, "validation")


async def test_names_are_announced_in_title_events(client, make, auth, nats_url, event_namespace):
    title = await make.title(names=AOT)
    r = await client.patch(
        f"/api/admin/titles/{title['id']}", json={"names": AOT[:2]}, headers=auth.editor
    )
    assert r.status_code == 200

    async def events(kind: str) -> list[dict]:
        msgs = await stream_messages(
            nats_url, event_namespace.stream, subject_for(event_namespace.subject_root, kind)
        )
        found = [envelope_of(m)["data"] for m in msgs]
        return [d for d in found if d["titleId"] == title["id"]]

    async def both() -> bool:
        return bool(await events("catalog.title.created")) and bool(
            await events("catalog.title.updated")
        )

    await wait_until(both)
    await asyncio.sleep(0.2)
    assert [e["names"] for e in await events("catalog.title.created")] == [AOT]
    assert [e["names"] for e in await events("catalog.title.updated")] == [AOT[:2]]


# --- the pure parts ---------------------------------------------------------------


def test_normalize_name():
    assert normalize_name("ｼﾝｹﾞｷ") == "シンゲキ"  # half-width katakana
    assert normalize_name(" a \u3000 b ") == "a b"
    for bad in ("a\tb", "a\x00", "a\x1b[31m", "a\u0085", "\ue000"):
        with pytest.raises(ValueError, match="control"):
            normalize_name(bad)


@pytest.mark.parametrize(
    ("kana", "romaji"),
    [
        ("しんげきのきょじん", "shingekinokyojin"),
        ("シンゲキノキョジン", "shingekinokyojin"),
        ("ちゃっと", "chatto"),
        ("まっちゃ", "matcha"),
        ("らーめん", "raamen"),
        ("こんにちは", "konnichiha"),
        ("きんえん", "kinen"),
        ("じゅじゅつかいせん", "jujutsukaisen"),
        ("ふじ", "fuji"),
    ],
)
def test_kana_to_romaji(kana, romaji):
    assert kana_to_romaji(kana) == romaji


def test_fold_and_keys():
    assert fold("Shōnen  Jump") == "shonen jump"
    assert keys_of("Shōnen") == ["shonen", "shounen"]
    assert keys_of("ナルト") == ["なると", "naruto"]
    assert keys_of("Kimi no Na wa.") == ["kimi no na wa.", "kiminonawa."]


def test_preferred_language_and_display_name():
    assert preferred_language(None, "ja-JP;q=0.5, en-US;q=0.9") == "en"
    assert preferred_language(None, "en;q=0") is None
    assert preferred_language(None, "x-klingon") is None
    assert display_name("P", [], "en") == "P"
    assert display_name("P", [{"kind": "native", "language": "ko", "name": "K"}], "ko") == "K"
