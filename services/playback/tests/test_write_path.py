"""The position write path: fast path and routed path agree; batches isolate
failures and keep one write per row."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest

from studio_common.testing.plugin import serve_app
from studio_playback.main import create_app
from studio_playback.positions import PositionWriter


@pytest.fixture
async def routed_client(playback_settings):
    """The same service with the fast path off: POST /api/playback is routed."""
    settings = playback_settings.model_copy(
        update={"positions_fast_path": False, "run_consumers": False, "run_outbox_relay": False}
    )
    async with serve_app(create_app(settings)) as c:
        yield c


def shape(r):
    body = r.json()
    for volatile in ("updatedAt", "instance", "detail"):
        body.pop(volatile, None)
    return r.status_code, body


async def test_fast_path_and_routed_path_answer_alike(client, routed_client, catalog, users):
    title = await catalog.title()
    episodes = [await catalog.episode(title, 1, n, 100.0) for n in (1, 2)]
    cases = [
        lambda ep: {"episodeId": str(ep), "positionSec": 10, "sequence": 2},
        lambda ep: {"episodeId": str(ep), "positionSec": 5, "sequence": 1},  # stale
        lambda ep: {"episodeId": str(ep), "positionSec": 500, "sequence": 3},  # clamped
        lambda ep: {"episodeId": str(ep), "positionSec": -1},
        lambda ep: {"episodeId": str(uuid.uuid4()), "positionSec": 1},
        lambda ep: {"episodeId": str(ep)},
    ]
    user_a, user_b = users(), users()
    for case in cases:
        fast = await client.post("/api/playback", json=case(episodes[0]), headers=user_a.headers)
        routed = await routed_client.post(
            "/api/playback", json=case(episodes[1]), headers=user_b.headers
        )
        fast_shape, routed_shape = shape(fast), shape(routed)
        for body in (fast_shape[1], routed_shape[1]):
            body.pop("episodeId", None)
        assert fast_shape == routed_shape
        assert (
            fast.headers["content-type"].split(";")[0]
            == routed.headers["content-type"].split(";")[0]
        )
    for c in (client, routed_client):
        r = await c.post("/api/playback", json={"episodeId": str(episodes[0]), "positionSec": 1})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = await c.post("/api/playback", content=b"{not json", headers={**user_a.headers})
        assert r.status_code == 422


async def test_fast_path_keeps_request_ids_metrics_and_limits(client, catalog, users, caplog):
    caplog.set_level(logging.INFO, logger="studio.access")
    user = users()
    title = await catalog.title()
    ep = await catalog.episode(title)
    r = await client.post(
        "/api/playback",
        json={"episodeId": str(ep), "positionSec": 3},
        headers={**user.headers, "X-Request-ID": "abc-123"},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "abc-123"
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/playback"' in metrics
    r = await client.post(
        "/api/playback", content=b"{" + b" " * 20_000 + b"}", headers=user.headers
    )
    assert r.status_code == 413
    # Successful writes are counted but not access-logged; failures are logged.
    logged = [
        (getattr(rec, "method", None), getattr(rec, "status", None))
        for rec in caplog.records
        if rec.name == "studio.access" and getattr(rec, "route", None) == "/api/playback"
    ]
    assert logged == [("POST", 413)]
    # Other methods on the path still go through routing.
    assert (await client.get("/api/playback", headers=user.headers)).status_code == 405


async def test_a_batch_keeps_one_write_per_row_and_isolates_failures(runtime, catalog, sql):
    title = await catalog.title()
    ep = await catalog.episode(title, duration=10_000.0)
    pool = runtime.context.positions_pool
    writer = PositionWriter(pool, watched_fraction=0.9, batch_size=64, concurrent_batches=1)
    users = [f"user_{uuid.uuid4().hex[:8]}" for _ in range(20)]
    calls = [writer.save(u, ep, float(k), k) for u in users for k in (3, 1, 2)]
    # A write the database refuses (the API would have answered 422) ...
    calls.append(writer.save("someone-else", ep, -5.0, 99))
    # ... and one for an episode that does not exist.
    calls.append(writer.save(users[1], uuid.uuid4(), 5.0, 99))
    results = await asyncio.gather(*calls, return_exceptions=True)
    *answers, refused, unknown = results
    assert all(not isinstance(a, BaseException) for a in answers), answers
    assert isinstance(refused, asyncpg.CheckViolationError)
    assert getattr(unknown, "status", None) == 404
    rows = await sql(
        "SELECT user_id, seq, position_sec FROM playback.positions WHERE episode_id = :e", e=ep
    )
    assert len(rows) == 20  # none for "someone-else"
    assert {(r["seq"], r["position_sec"]) for r in rows} == {(3, 3.0)}
    # Per user: the write with key 3 was applied; 1 and 2 came after it or lost.
    applied = [a.applied for a in answers]
    assert applied.count(True) >= 20
    for a in answers:
        if not a.applied:
            assert a.sequence == 3


def test_pool_refill_failures_are_one_line_not_a_traceback():
    import logging
    import sys

    from studio_playback.positions import _one_line_floor_warnings

    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError:
        record = logging.LogRecord(
            "asyncpg.pool",
            logging.WARNING,
            __file__,
            1,
            "Failed to restore the pool connection floor; retrying",
            None,
            sys.exc_info(),
        )
    assert _one_line_floor_warnings(record) is True
    assert record.exc_info is None
    assert record.getMessage() == (
        "Failed to restore the pool connection floor; retrying: "
        "ConnectionRefusedError(111, 'Connection refused')"
    )
    assert "Traceback" not in logging.Formatter().format(record)
