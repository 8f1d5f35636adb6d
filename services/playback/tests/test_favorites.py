"""Favorites and the watchlist, including concurrent toggles by one user."""

from __future__ import annotations

import asyncio
import uuid

import pytest


async def toggle(client, user, title_id, **extra):
    return await client.post(
        "/api/favorites", json={"titleId": str(title_id), **extra}, headers=user.headers
    )


async def test_toggling_twice_removes_the_favorite(client, catalog, users, sql):
    user = users()
    title = await catalog.title("Frieren")

    r = await toggle(client, user, title)
    assert r.status_code == 200, r.text
    assert r.json() == {"titleId": str(title), "favorite": True}
    r = await client.get("/api/users/me/watchlist", headers=user.headers)
    assert [i["titleId"] for i in r.json()["items"]] == [str(title)]

    r = await toggle(client, user, title)
    assert r.json() == {"titleId": str(title), "favorite": False}
    r = await client.get("/api/users/me/watchlist", headers=user.headers)
    assert r.json()["items"] == []
    assert r.json()["total"] == 0
    rows = await sql("SELECT active FROM playback.favorites WHERE user_id = :u", u=user.id)
    assert rows == [{"active": False}]


async def test_setting_the_state_explicitly_is_idempotent(client, catalog, users):
    user = users()
    title = await catalog.title()
    for _ in range(2):
        r = await toggle(client, user, title, favorite=True)
        assert r.json()["favorite"] is True
    r = await toggle(client, user, title, favorite=False)
    assert r.json()["favorite"] is False
    r = await toggle(client, user, title)
    assert r.json()["favorite"] is True


async def test_unknown_title_is_404(client, users):
    r = await toggle(client, users(), uuid.uuid4())
    assert r.status_code == 404
    assert r.json()["type"] == "urn:studio:problem:not-found"


@pytest.mark.parametrize("n", [50, 7])
async def test_concurrent_toggles_by_one_user_end_consistent(client, catalog, users, sql, n):
    user = users()
    title = await catalog.title()
    responses = await asyncio.gather(*(toggle(client, user, title) for _ in range(n)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    states = [r.json()["favorite"] for r in responses]
    # Each toggle saw the result of the one before it: the states alternate.
    assert states.count(True) == (n + 1) // 2
    assert states.count(False) == n // 2
    rows = await sql(
        "SELECT active FROM playback.favorites WHERE user_id = :u AND title_id = :t",
        u=user.id,
        t=title,
    )
    assert rows == [{"active": n % 2 == 1}]
    r = await client.get("/api/users/me/watchlist", headers=user.headers)
    assert r.json()["total"] == n % 2


async def test_concurrent_first_toggles_by_many_users_each_add_one(client, catalog, users, sql):
    title = await catalog.title()
    people = [users() for _ in range(20)]
    responses = await asyncio.gather(*(toggle(client, u, title) for u in people))
    assert all(r.json()["favorite"] is True for r in responses)
    rows = await sql("SELECT count(*) AS n FROM playback.favorites WHERE title_id = :t", t=title)
    assert rows == [{"n": 20}]


async def test_watchlist_is_newest_first_paged_with_summaries(client, catalog, users):
    user = users()
    titles = [await catalog.title(f"Show {i}") for i in range(5)]
    for t in titles:
        assert (await toggle(client, user, t)).json()["favorite"] is True

    r = await client.get(
        "/api/users/me/watchlist", params={"page": 1, "pageSize": 2}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 5
    assert body["totalPages"] == 3
    assert body["pageSize"] == 2
    assert [i["name"] for i in body["items"]] == ["Show 4", "Show 3"]
    item = body["items"][0]
    assert item["titleId"] == str(titles[4])
    assert item["slug"] == f"show-{titles[4].hex[:8]}"
    assert "favoritedAt" in item

    r = await client.get(
        "/api/users/me/watchlist", params={"page": 3, "pageSize": 2}, headers=user.headers
    )
    assert [i["name"] for i in r.json()["items"]] == ["Show 0"]

    # Re-adding a title moves it to the front.
    await toggle(client, user, titles[0])
    await toggle(client, user, titles[0])
    r = await client.get("/api/users/me/watchlist", headers=user.headers)
    assert r.json()["items"][0]["name"] == "Show 0"


async def test_watchlist_page_size_is_bounded(client, users):
    user = users()
    r = await client.get("/api/users/me/watchlist", params={"pageSize": 51}, headers=user.headers)
    assert r.status_code == 422
    r = await client.get("/api/users/me/watchlist", params={"pageSize": 0}, headers=user.headers)
    assert r.status_code == 422
    r = await client.get("/api/users/me/watchlist", params={"page": 0}, headers=user.headers)
    assert r.status_code == 422


async def test_only_the_owner_or_an_admin_reads_a_watchlist(client, catalog, users):
    owner, other, admin = users(), users(), users("admin")
    owner_id = await catalog.announce(owner)
    await catalog.announce(other)
    title = await catalog.title()
    await toggle(client, owner, title)
    path = f"/api/users/{owner_id}/watchlist"

    # The owner by identity's id (what /api/me returns), not only by `me`.
    r = await client.get(path, headers=owner.headers)
    assert r.status_code == 200, r.text
    assert [i["titleId"] for i in r.json()["items"]] == [str(title)]

    r = await client.get(path, headers=other.headers)
    assert r.status_code == 403
    assert r.json()["type"] == "urn:studio:problem:forbidden"
    editor = users("editor")
    assert (await client.get(path, headers=editor.headers)).status_code == 403
    assert (await client.get(path)).status_code == 401

    r = await client.get(path, headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["total"] == 1
    # `me` is always the caller, for an admin too.
    r = await client.get("/api/users/me/watchlist", headers=admin.headers)
    assert r.json()["total"] == 0


@pytest.mark.parametrize("role", ["viewer", "admin"])
async def test_an_unknown_user_is_404_never_an_empty_list(client, catalog, users, role):
    owner, caller = users(), users(role)
    await toggle(client, owner, await catalog.title())
    # Not an id identity announced: a random one, and the token subject itself.
    for value in (str(uuid.uuid4()), owner.id, "not-an-id"):
        r = await client.get(f"/api/users/{value}/watchlist", headers=caller.headers)
        assert r.status_code == 404, (value, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "urn:studio:problem:not-found"


async def test_a_deleted_user_is_404(client, catalog, users):
    from studio_common.events import UserDeletedV1

    owner, admin = users(), users("admin")
    owner_id = await catalog.announce(owner)
    path = f"/api/users/{owner_id}/watchlist"
    assert (await client.get(path, headers=admin.headers)).status_code == 200
    await catalog.publish(UserDeletedV1(user_id=owner_id, clerk_id=owner.id))

    async def gone() -> bool:
        return (await client.get(path, headers=admin.headers)).status_code == 404

    from studio_common.testing.jetstream import wait_until

    await wait_until(gone)


def test_the_openapi_says_which_id(playback_app):
    spec = playback_app.openapi()["paths"]["/api/users/{user_id}/watchlist"]["get"]
    [param] = [p for p in spec["parameters"] if p["name"] == "user_id"]
    assert "/api/me" in param["description"]
    assert "`me`" in param["description"]
