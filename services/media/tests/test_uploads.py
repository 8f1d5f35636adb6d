"""Presigned and multipart uploads against a real S3 API over HTTP, Postgres and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text

from studio_media.cleanup import cleanup_uploads

PROBLEM = "urn:studio:problem:"
MiB = 1024**2
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def mp4_bytes(size: int) -> bytes:
    return MP4_HEAD + b"\x00" * (size - len(MP4_HEAD))


def unique(prefix: str = "uploads", ext: str = "mp4") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}/file.{ext}"


async def presign(client, auth, key, content_type, size, sub=None):
    return await client.post(
        "/api/admin/presign",
        json={"key": key, "contentType": content_type, "size": size},
        headers=auth.headers("editor", sub),
    )


# --- single presigned PUT -----------------------------------------------------


async def test_presign_put_and_verify(client, auth, s3c, bucket):
    key = unique()
    body = mp4_bytes(4096)
    r = await presign(client, auth, key, "video/mp4", len(body))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["key"] == key
    assert out["expiresIn"] > 0
    assert out["headers"] == {"Content-Type": "video/mp4", "Content-Length": "4096"}
    # The size and type are part of the signature: S3 rejects any other body.
    signed = parse_qs(urlsplit(out["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-length", "content-type", "host"} <= set(signed)

    async with httpx.AsyncClient() as raw:
        put = await raw.put(out["url"], content=body, headers=out["headers"])
    assert put.status_code == 200, put.text
    assert s3c.get_object(Bucket=bucket, Key=key)["Body"].read() == body

    r = await client.post("/api/admin/uploads/verify", json={"key": key}, headers=auth.editor)
    assert r.status_code == 200, r.text
    assert r.json()["format"] == "mp4"
    assert r.json()["size"] == 4096
    assert r.json()["uploadId"] is not None


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("movies/a.mp4", "unknown prefix"),
        ("/uploads/a.mp4", "absolute"),
        ("uploads/../posters/a.mp4", "dot-dot"),
        ("uploads/./a.mp4", "dot segment"),
        ("uploads//a.mp4", "empty segment"),
        ("uploads\\a.mp4", "backslash"),
        ("uploads/a b.mp4", "space"),
        ("uploads/%2e%2e/a.mp4", "percent"),
        ("uploads/ä.mp4", "non-ascii"),
        ("uploads/" + "a" * 600 + ".mp4", "too long"),
        ("uploads/noext", "no extension"),
        ("uploads/.mp4", "no name"),
        ("uploads", "no file"),
    ],
)
async def test_bad_keys_are_rejected(client, auth, key, reason):
    r = await presign(client, auth, key, "video/mp4", 100)
    assert r.status_code == 422, (reason, r.text)
    assert r.json()["type"] == PROBLEM + "invalid-upload-key", reason
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("uploads/a.mp4", "video/webm"),  # type and extension disagree
        ("uploads/a.mp4", "image/jpeg"),
        ("uploads/a.exe", "application/octet-stream"),  # extension not allowed
        ("uploads/a.jpg", "image/jpeg"),  # art is not a source
        ("posters/a.png", "image/jpeg"),
        ("posters/a.mp4", "video/mp4"),
        ("posters/a.svg", "image/svg+xml"),  # script-capable images stay out
        ("banners/a.gif", "image/gif"),
        ("subtitles/a.vtt", "text/plain"),
        ("subtitles/a.srt", "text/vtt"),
        ("subtitles/a.html", "text/html"),
    ],
)
async def test_bad_types_are_rejected(client, auth, key, content_type):
    r = await presign(
        client, auth, key.replace("/a.", f"/{uuid.uuid4().hex[:6]}."), content_type, 100
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "content-type-not-allowed"


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("uploads/a.mkv", "video/x-matroska"),
        ("uploads/a.mov", "video/quicktime"),
        ("uploads/a.webm", "video/webm"),
        ("uploads/a.ts", "video/mp2t"),
        ("posters/a.jpg", "image/jpeg"),
        ("banners/a.webp", "image/webp"),
        ("posters/a.avif", "image/avif"),
        ("subtitles/a.vtt", "text/vtt; charset=utf-8"),
        ("subtitles/a.ass", "text/x-ssa"),
        ("subtitles/a.ass", "application/x-ass"),
        ("subtitles/a.srt", "application/x-subrip"),
    ],
)
async def test_allowed_types_are_presigned(client, auth, key, content_type):
    r = await presign(client, auth, key, content_type, 100)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("key", "content_type", "size"),
    [
        ("uploads/a.mp4", "video/mp4", 64 * MiB + 1),
        ("posters/a.jpg", "image/jpeg", 1 * MiB + 1),
        ("subtitles/a.vtt", "text/vtt", 64 * 1024 + 1),
    ],
)
async def test_sizes_over_the_prefix_cap_are_rejected(client, auth, key, content_type, size):
    r = await presign(client, auth, key, content_type, size)
    assert r.status_code == 413, r.text
    assert r.json()["type"] == PROBLEM + "upload-too-large"
    assert r.json()["maxBytes"] == size - 1
    r = await presign(client, auth, key, content_type, size - 1)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("size", [0, -1, "big"])
async def test_malformed_sizes_are_validation_errors(client, auth, size):
    r = await presign(client, auth, unique(), "video/mp4", size)
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "validation"


async def put_via_presign(client, auth, key, content_type, body, declared=None):
    r = await presign(client, auth, key, content_type, declared or len(body))
    assert r.status_code == 200, r.text
    out = r.json()
    async with httpx.AsyncClient() as raw:
        # The local S3 stand-in does not enforce the signed length; S3 would.
        headers = {"Content-Type": out["headers"]["Content-Type"]}
        assert (await raw.put(out["url"], content=body, headers=headers)).status_code == 200


async def verify(client, auth, key):
    return await client.post("/api/admin/uploads/verify", json={"key": key}, headers=auth.editor)


async def test_verify_rejects_what_is_not_a_video(client, auth, s3c, bucket):
    key = unique()
    await put_via_presign(client, auth, key, "video/mp4", b"<html>not a video</html>" * 20)
    r = await verify(client, auth, key)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "upload-content-invalid"
    assert "video container" in r.json()["detail"]
    # A rejected object is gone, so nothing can reference it.
    assert s3c.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount") == 0
    # And the rejection was recorded although the response is an error.
    assert (await verify(client, auth, key)).json()["type"] == PROBLEM + "upload-missing"


@pytest.mark.parametrize(
    ("ext", "content_type", "head"),
    [
        ("mkv", "video/x-matroska", b"\x1a\x45\xdf\xa3" + b"\x00" * 60),
        ("webm", "video/webm", b"\x1a\x45\xdf\xa3" + b"\x00" * 60),
        ("mov", "video/quicktime", b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 60),
        ("ts", "video/mp2t", (b"\x47" + b"\x00" * 187) * 3),
    ],
)
async def test_verify_accepts_each_container(client, auth, ext, content_type, head):
    key = unique(ext=ext)
    await put_via_presign(client, auth, key, content_type, head)
    r = await verify(client, auth, key)
    assert r.status_code == 200, r.text


async def test_verify_rejects_a_container_other_than_declared(client, auth):
    key = unique(ext="mkv")
    await put_via_presign(client, auth, key, "video/x-matroska", mp4_bytes(1000))
    r = await verify(client, auth, key)
    assert r.json()["type"] == PROBLEM + "upload-content-invalid"
    assert r.json()["detected"] == "mp4"


async def test_verify_rejects_a_body_larger_than_declared(client, auth):
    # S3 would refuse this PUT (signed Content-Length); the check catches it anyway.
    key = unique()
    await put_via_presign(client, auth, key, "video/mp4", mp4_bytes(3000), declared=1000)
    r = await verify(client, auth, key)
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "upload-size-mismatch"
    assert (r.json()["declaredSize"], r.json()["size"]) == (1000, 3000)


async def test_verify_rejects_an_object_over_the_cap(client, auth, s3c, bucket):
    key = unique(prefix="posters", ext="png")
    s3c.put_object(
        Bucket=bucket, Key=key, Body=b"\x89PNG\r\n\x1a\n" + b"\x00" * MiB, ContentType="image/png"
    )
    r = await verify(client, auth, key)
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "upload-object-too-large"


async def test_verify_rejects_a_stored_content_type_that_is_not_allowed(client, auth, s3c, bucket):
    key = unique()
    s3c.put_object(Bucket=bucket, Key=key, Body=mp4_bytes(100), ContentType="text/html")
    r = await verify(client, auth, key)
    assert r.json()["type"] == PROBLEM + "upload-content-type-mismatch"


async def test_verify_of_a_missing_object(client, auth):
    r = await verify(client, auth, unique())
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "upload-missing"


async def test_verify_checks_art_and_subtitles_too(client, auth):
    good = [
        ("posters", "jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 100),
        ("subtitles", "vtt", "text/vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"),
        ("subtitles", "srt", "application/x-subrip", b"1\n00:00:00,000 --> 00:00:01,000\nhi\n"),
        ("subtitles", "ass", "text/x-ssa", b"[Script Info]\nTitle: x\n"),
    ]
    for prefix, ext, ctype, body in good:
        key = unique(prefix, ext)
        await put_via_presign(client, auth, key, ctype, body)
        assert (await verify(client, auth, key)).status_code == 200, key
    key = unique("posters", "png")
    await put_via_presign(client, auth, key, "image/png", b"GIF89a" + b"\x00" * 100)
    assert (await verify(client, auth, key)).json()["type"] == PROBLEM + "upload-content-invalid"


# --- multipart, resumable -----------------------------------------------------


async def create_upload(client, auth, sub, key, size, content_type="video/mp4"):
    r = await client.post(
        "/api/admin/uploads",
        json={"key": key, "contentType": content_type, "size": size},
        headers=auth.headers("editor", sub),
    )
    assert r.status_code == 201, r.text
    return r.json()


async def put_parts(client, auth, sub, upload, body, numbers):
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/parts",
        json={"partNumbers": numbers},
        headers=auth.headers("editor", sub),
    )
    assert r.status_code == 200, r.text
    size = upload["partSize"]
    etags = {}
    async with httpx.AsyncClient() as raw:
        for part in r.json()["parts"]:
            n = part["partNumber"]
            chunk = body[(n - 1) * size : n * size]
            assert part["headers"] == {"Content-Length": str(len(chunk))}
            put = await raw.put(part["url"], content=chunk)
            assert put.status_code == 200, put.text
            etags[n] = put.headers["etag"]
    return etags


async def test_multipart_upload_resumes_after_a_dropped_connection(client, auth, s3c, bucket):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    body = mp4_bytes(11 * MiB) + bytes(range(256)) * 7
    key = unique()
    upload = await create_upload(client, auth, sub, key, len(body))
    assert (upload["partSize"], upload["partCount"]) == (5 * MiB, 3)
    assert upload["status"] == "uploading"

    await put_parts(client, auth, sub, upload, body, [1, 3])
    # ... the connection drops; the client asks what storage already has.
    r = await client.get(
        f"/api/admin/uploads/{upload['uploadId']}", headers=auth.headers("editor", sub)
    )
    assert r.status_code == 200, r.text
    progress = r.json()
    assert [p["partNumber"] for p in progress["parts"]] == [1, 3]
    assert progress["missingParts"] == [2]
    assert progress["parts"][1]["size"] == len(body) - 10 * MiB

    # Completing now names the missing part.
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/complete", headers=auth.headers("editor", sub)
    )
    assert r.status_code == 409
    assert r.json()["type"] == PROBLEM + "upload-incomplete"
    assert r.json()["missingParts"] == [2]

    etags = await put_parts(client, auth, sub, upload, body, progress["missingParts"])
    etags.update({p["partNumber"]: p["etag"] for p in progress["parts"]})
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/complete",
        json={"parts": [{"partNumber": n, "etag": etags[n]} for n in sorted(etags)]},
        headers=auth.headers("editor", sub),
    )
    assert r.status_code == 200, r.text
    assert r.json()["format"] == "mp4"
    stored = s3c.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(body).digest()

    r = await client.get(
        f"/api/admin/uploads/{upload['uploadId']}", headers=auth.headers("editor", sub)
    )
    assert r.json()["status"] == "verified"
    # A finished upload cannot be aborted or given more parts.
    r = await client.delete(
        f"/api/admin/uploads/{upload['uploadId']}", headers=auth.headers("editor", sub)
    )
    assert r.status_code == 409
    assert r.json()["type"] == PROBLEM + "upload-not-open"


async def test_complete_without_a_part_list_uses_what_storage_holds(client, auth, s3c, bucket):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    body = mp4_bytes(6 * MiB)
    key = unique()
    upload = await create_upload(client, auth, sub, key, len(body))
    await put_parts(client, auth, sub, upload, body, [1, 2])
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/complete", headers=auth.headers("editor", sub)
    )
    assert r.status_code == 200, r.text
    assert s3c.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)


async def test_complete_with_wrong_etags_is_refused(client, auth):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    body = mp4_bytes(1000)
    upload = await create_upload(client, auth, sub, unique(), len(body))
    await put_parts(client, auth, sub, upload, body, [1])
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/complete",
        json={"parts": [{"partNumber": 1, "etag": '"0000"'}]},
        headers=auth.headers("editor", sub),
    )
    assert r.status_code == 409
    assert r.json()["type"] == PROBLEM + "upload-parts-mismatch"


async def test_a_multipart_upload_that_is_not_a_video_is_rejected_on_complete(
    client, auth, s3c, bucket
):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    body = b"not a video at all " * 100
    key = unique()
    upload = await create_upload(client, auth, sub, key, len(body))
    await put_parts(client, auth, sub, upload, body, [1])
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/complete", headers=auth.headers("editor", sub)
    )
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "upload-content-invalid"
    assert s3c.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount") == 0
    r = await client.get(
        f"/api/admin/uploads/{upload['uploadId']}", headers=auth.headers("editor", sub)
    )
    assert r.json()["status"] == "rejected"


async def test_part_numbers_outside_the_upload_are_refused(client, auth):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    upload = await create_upload(client, auth, sub, unique(), 1000)
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/parts",
        json={"partNumbers": [1, 2]},
        headers=auth.headers("editor", sub),
    )
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "invalid-part-number"
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/parts",
        json={"partNumbers": [0]},
        headers=auth.headers("editor", sub),
    )
    assert r.status_code == 422


async def test_abort_drops_the_parts(client, auth, s3c, bucket, media_app):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    body = mp4_bytes(1000)
    upload = await create_upload(client, auth, sub, unique(), len(body))
    await put_parts(client, auth, sub, upload, body, [1])
    r = await client.delete(
        f"/api/admin/uploads/{upload['uploadId']}", headers=auth.headers("editor", sub)
    )
    assert r.status_code == 204
    s3_ids = await s3_upload_ids(media_app)
    assert await upload_status(media_app, upload["uploadId"]) == "aborted"
    assert s3_ids[upload["uploadId"]] not in open_s3_uploads(s3c, bucket)


async def test_another_editors_upload_is_not_theirs(client, auth):
    owner = f"user_{uuid.uuid4().hex[:8]}"
    upload = await create_upload(client, auth, owner, unique(), 1000)
    url = f"/api/admin/uploads/{upload['uploadId']}"
    assert (await client.get(url, headers=auth.editor)).status_code == 403
    assert (await client.delete(url, headers=auth.editor)).status_code == 403
    # An admin may clean up after anyone.
    assert (await client.get(url, headers=auth.headers("admin"))).status_code == 200
    assert (
        await client.get(f"/api/admin/uploads/{uuid.uuid4()}", headers=auth.editor)
    ).status_code == 404


# --- abandoned uploads --------------------------------------------------------


async def s3_upload_ids(app) -> dict[str, str]:
    async with app.state.runtime.database.transaction() as s:
        rows = (await s.execute(text("SELECT id, s3_upload_id FROM media.uploads"))).all()
    return {str(r[0]): r[1] for r in rows}


async def upload_status(app, upload_id: str) -> str:
    async with app.state.runtime.database.transaction() as s:
        return str(
            await s.scalar(
                text("SELECT status FROM media.uploads WHERE id = :id"), {"id": upload_id}
            )
        )


def open_s3_uploads(s3c, bucket) -> set[str]:
    return {u["UploadId"] for u in s3c.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}


async def test_abandoned_uploads_are_aborted(client, auth, s3c, bucket, media_app):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    old = await create_upload(client, auth, sub, unique(), 1000)
    fresh = await create_upload(client, auth, sub, unique(), 1000)
    stale_presign = (await presign(client, auth, unique(), "video/mp4", 10, sub)).json()
    async with media_app.state.runtime.database.transaction() as s:
        await s.execute(
            text(
                "UPDATE media.uploads SET created_at = now() - interval '30 hours' "
                "WHERE id = :id OR key = :key"
            ),
            {"id": old["uploadId"], "key": stale_presign["key"]},
        )
    # An S3 upload no row knows (its row never committed).
    orphan = s3c.create_multipart_upload(Bucket=bucket, Key=unique(), ContentType="video/mp4")
    ids = await s3_upload_ids(media_app)

    ctx = media_app.state.media
    report = await cleanup_uploads(
        media_app.state.runtime.database, ctx.storage, max_age=timedelta(hours=24)
    )
    assert report.aborted >= 1
    assert report.expired >= 1
    assert report.orphans_aborted >= 1
    still_open = open_s3_uploads(s3c, bucket)
    assert ids[old["uploadId"]] not in still_open
    assert orphan["UploadId"] not in still_open
    assert ids[fresh["uploadId"]] in still_open
    assert await upload_status(media_app, old["uploadId"]) == "aborted"
    assert await upload_status(media_app, fresh["uploadId"]) == "uploading"


def test_cleanup_command_runs(media_settings):
    env = {
        "MEDIA_DATABASE_URL": media_settings["database_url"],
        "MEDIA_S3_ENDPOINT_URL": media_settings["s3_endpoint_url"],
        "MEDIA_S3_BUCKET": media_settings["s3_bucket"],
        "MEDIA_S3_ACCESS_KEY_ID": "test",
        "MEDIA_S3_SECRET_ACCESS_KEY": "test-secret",
        "MEDIA_UPLOAD_MAX_AGE_HOURS": "48",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-m", "studio_media", "cleanup-uploads"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "aborted" in out.stdout
    assert "older than 48.0 h" in out.stdout


# --- rate limits --------------------------------------------------------------


async def test_presign_rate_limit_holds_across_replicas_and_recovers(client, auth, replica):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    other = httpx.AsyncClient(base_url=replica.state.base_url, timeout=30)
    async with other:
        # 5 per window per user, counted in Redis: both replicas share the budget.
        for i in range(5):
            c = client if i % 2 else other
            r = await presign(c, auth, unique(), "video/mp4", 10, sub)
            assert r.status_code == 200, r.text
        r = await presign(other, auth, unique(), "video/mp4", 10, sub)
        assert r.status_code == 429
        assert r.json()["type"] == PROBLEM + "rate-limited"
        retry_after = int(r.headers["retry-after"])
        assert 1 <= retry_after <= 2
        # Another user is not affected.
        assert (await presign(client, auth, unique(), "video/mp4", 10)).status_code == 200
        # Multipart starts draw from the same budget.
        r = await client.post(
            "/api/admin/uploads",
            json={"key": unique(), "contentType": "video/mp4", "size": 10},
            headers=auth.headers("editor", sub),
        )
        assert r.status_code == 429
        await asyncio.sleep(retry_after + 0.1)
        assert (await presign(client, auth, unique(), "video/mp4", 10, sub)).status_code == 200


async def test_the_limiter_lets_requests_through_when_redis_is_down(media_settings):
    from redis.asyncio import Redis

    from studio_media.ratelimit import Limit, RateLimiter

    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        limiter = RateLimiter(redis, media_settings["rate_limit_prefix"])
        started = time.monotonic()
        await limiter.hit(Limit("presign", 1, 1), "someone")
        await limiter.hit(Limit("presign", 1, 1), "someone")
        assert time.monotonic() - started < 5
    finally:
        await redis.aclose()
