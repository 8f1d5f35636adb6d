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

from studio_media.service.cleanup import cleanup_uploads

PROBLEM = "urn:studio:problem:"
MiB = 1024**2
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def mp4_bytes(size: int) -> bytes:
    return MP4_HEAD + b"\x00" * (size - len(MP4_HEAD))


def editor() -> str:
    return f"user_{uuid.uuid4().hex[:8]}"


async def presign(client, auth, kind, filename, content_type, size, sub=None, attach_to=None):
    body = {"kind": kind, "filename": filename, "contentType": content_type, "size": size}
    if attach_to is not None:
        body["attachTo"] = attach_to
    return await client.post(
        "/api/admin/presign", json=body, headers=auth.headers("editor", sub or editor())
    )


async def put(url, body, headers):
    async with httpx.AsyncClient() as raw:
        return await raw.put(url, content=body, headers=headers)


# --- single presigned PUT -----------------------------------------------------


async def test_presign_put_and_verify(client, auth, s3c, bucket):
    sub = editor()
    body = mp4_bytes(4096)
    r = await presign(
        client, auth, "source", "episode 1.mp4".replace(" ", "_"), "video/mp4", 4096, sub
    )
    assert r.status_code == 200, r.text
    out = r.json()
    # The key is the server's, made from the upload's own id.
    assert out["key"] == f"uploads/{out['uploadId']}/episode_1.mp4"
    assert out["expiresIn"] > 0
    assert out["headers"] == {
        "Content-Type": "video/mp4",
        "Content-Length": "4096",
        "If-None-Match": "*",
    }
    # The size, type and "no overwrite" are part of the signature.
    signed = parse_qs(urlsplit(out["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-length", "content-type", "host", "if-none-match"} <= set(signed)

    assert (await put(out["url"], body, out["headers"])).status_code == 200
    assert s3c.get_object(Bucket=bucket, Key=out["key"])["Body"].read() == body

    r = await verify(client, auth, out["uploadId"], sub)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "uploadId": out["uploadId"],
        "key": out["key"],
        "kind": "source",
        "size": 4096,
        "contentType": "video/mp4",
        "format": "mp4",
        "attachedTo": None,
    }
    # Checking again answers the same without touching storage again.
    assert (await verify(client, auth, out["uploadId"], sub)).json() == r.json()


async def test_the_same_file_name_twice_is_two_objects(client, auth):
    sub = editor()
    a = (await presign(client, auth, "source", "ep.mp4", "video/mp4", 100, sub)).json()
    b = (await presign(client, auth, "source", "ep.mp4", "video/mp4", 100, sub)).json()
    assert a["key"] != b["key"]
    assert a["key"].endswith("/ep.mp4")


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        ("../posters/a.mp4", "dot-dot"),
        ("a/b.mp4", "slash"),
        ("/a.mp4", "absolute"),
        ("a\\b.mp4", "backslash"),
        ("a b.mp4", "space"),
        ("%2e%2e.mp4", "percent"),
        ("ä.mp4", "non-ascii"),
        ("a" * 300 + ".mp4", "too long"),
        ("noext", "no extension"),
        (".mp4", "no name"),
        ("...mp4", "dots only"),
    ],
)
async def test_bad_file_names_are_rejected(client, auth, filename, reason):
    r = await presign(client, auth, "source", filename, "video/mp4", 100)
    assert r.status_code == 422, (reason, r.text)
    assert r.json()["type"] == PROBLEM + "invalid-file-name", reason
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        {"key": "uploads/x/a.mp4", "contentType": "video/mp4", "size": 100},
        {
            "kind": "source",
            "filename": "a.mp4",
            "key": "uploads/x/a.mp4",
            "contentType": "video/mp4",
            "size": 100,
        },
        {"kind": "movie", "filename": "a.mp4", "contentType": "video/mp4", "size": 100},
    ],
)
async def test_a_client_cannot_choose_the_key(client, auth, body):
    r = await client.post("/api/admin/presign", json=body, headers=auth.editor)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "validation"


@pytest.mark.parametrize(
    ("kind", "filename", "content_type"),
    [
        ("source", "a.mp4", "video/webm"),  # type and extension disagree
        ("source", "a.mp4", "image/jpeg"),
        ("source", "a.exe", "application/octet-stream"),  # extension not allowed
        ("source", "a.m4v", "video/mp4"),
        ("source", "a.jpg", "image/jpeg"),  # art is not a source
        ("poster", "a.png", "image/jpeg"),
        ("poster", "a.mp4", "video/mp4"),
        ("poster", "a.svg", "image/svg+xml"),  # script-capable images stay out
        ("banner", "a.gif", "image/gif"),
    ],
)
async def test_bad_types_are_rejected(client, auth, kind, filename, content_type):
    r = await presign(client, auth, kind, filename, content_type, 100)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "content-type-not-allowed"


@pytest.mark.parametrize(
    ("kind", "filename", "content_type"),
    [
        ("source", "a.mkv", "video/x-matroska"),
        ("source", "a.mov", "video/quicktime"),
        ("source", "a.webm", "video/webm"),
        ("source", "a.ts", "video/mp2t"),
        ("poster", "a.jpg", "image/jpeg"),
        ("banner", "a.webp", "image/webp"),
        ("poster", "a.avif", "image/avif"),
    ],
)
async def test_allowed_types_are_presigned(client, auth, kind, filename, content_type):
    r = await presign(client, auth, kind, filename, content_type, 100)
    assert r.status_code == 200, r.text


async def source_upload(client, auth, sub) -> str:
    r = await presign(client, auth, "source", "ep.mkv", "video/x-matroska", 1000, sub)
    assert r.status_code == 200, r.text
    return str(r.json()["uploadId"])


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("a.vtt", "text/vtt; charset=utf-8"),
        ("a.ass", "text/x-ssa"),
        ("a.ass", "application/x-ass"),
        ("a.srt", "application/x-subrip"),
    ],
)
async def test_subtitle_types_are_presigned_for_a_source(client, auth, filename, content_type):
    sub = editor()
    source = await source_upload(client, auth, sub)
    r = await presign(client, auth, "subtitle", filename, content_type, 100, sub, source)
    assert r.status_code == 200, r.text
    assert r.json()["key"].startswith("subtitles/")


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("a.vtt", "text/plain"), ("a.srt", "text/vtt"), ("a.html", "text/html")],
)
async def test_bad_subtitle_types_are_rejected(client, auth, filename, content_type):
    sub = editor()
    source = await source_upload(client, auth, sub)
    r = await presign(client, auth, "subtitle", filename, content_type, 100, sub, source)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "content-type-not-allowed"


async def test_a_subtitle_belongs_to_a_source_of_the_same_editor(client, auth):
    owner, other = editor(), editor()
    source = await source_upload(client, auth, owner)
    vtt = ("subtitle", "x.en.vtt", "text/vtt", 100)
    r = await presign(client, auth, *vtt, owner)
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "attachment-required"
    # Another editor cannot attach anything to it.
    r = await presign(client, auth, *vtt, other, source)
    assert r.status_code == 403, r.text
    r = await presign(client, auth, *vtt, other, str(uuid.uuid4()))
    assert r.json()["type"] == PROBLEM + "unknown-attachment"
    # Nor can a subtitle attach to a subtitle, or a source to anything.
    own = (await presign(client, auth, *vtt, owner, source)).json()
    assert own["key"].startswith(f"subtitles/{own['uploadId']}/")
    r = await presign(client, auth, *vtt, owner, own["uploadId"])
    assert r.json()["type"] == PROBLEM + "unknown-attachment"
    r = await presign(client, auth, "source", "a.mp4", "video/mp4", 100, owner, source)
    assert r.json()["type"] == PROBLEM + "attachment-not-allowed"
    # An admin may attach to anyone's source.
    r = await client.post(
        "/api/admin/presign",
        json={
            "kind": "subtitle",
            "filename": "x.fr.vtt",
            "contentType": "text/vtt",
            "size": 100,
            "attachTo": source,
        },
        headers=auth.headers("admin"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["uploadId"] != source


@pytest.mark.parametrize(
    ("kind", "filename", "content_type", "size"),
    [
        ("source", "a.mp4", "video/mp4", 64 * MiB + 1),
        ("poster", "a.jpg", "image/jpeg", 1 * MiB + 1),
    ],
)
async def test_sizes_over_the_kind_cap_are_rejected(
    client, auth, kind, filename, content_type, size
):
    r = await presign(client, auth, kind, filename, content_type, size)
    assert r.status_code == 413, r.text
    assert r.json()["type"] == PROBLEM + "upload-too-large"
    assert r.json()["maxBytes"] == size - 1
    r = await presign(client, auth, kind, filename, content_type, size - 1)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("size", [0, -1, "big"])
async def test_malformed_sizes_are_validation_errors(client, auth, size):
    r = await presign(client, auth, "source", "a.mp4", "video/mp4", size)
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "validation"


async def test_accepted_types_are_published(client, auth):
    r = await client.get("/api/admin/uploads/accepted-types", headers=auth.editor)
    assert r.status_code == 200, r.text
    kinds = {k["kind"]: k for k in r.json()["kinds"]}
    assert set(kinds) == {"source", "poster", "banner", "subtitle"}
    source = {e["extension"]: e["contentTypes"] for e in kinds["source"]["extensions"]}
    assert source["mp4"] == ["video/mp4"]
    assert "m4v" not in source  # what presign refuses is not listed
    assert kinds["source"]["maxBytes"] == 64 * MiB
    assert kinds["subtitle"]["attachable"] is True
    assert kinds["source"]["attachable"] is False
    # Every listed pair is one presign accepts.
    for kind, data in kinds.items():
        for ext in data["extensions"]:
            for ctype in ext["contentTypes"]:
                if kind == "subtitle":
                    continue
                r = await presign(client, auth, kind, f"a.{ext['extension']}", ctype, 10)
                assert r.status_code == 200, (kind, ext, ctype, r.text)


async def upload_single(
    client, auth, sub, kind, filename, content_type, body, declared=None, attach_to=None
):
    r = await presign(
        client, auth, kind, filename, content_type, declared or len(body), sub, attach_to
    )
    assert r.status_code == 200, r.text
    out = r.json()
    # The local S3 stand-in does not enforce the signed length; S3 would.
    headers = {"Content-Type": out["headers"]["Content-Type"], "If-None-Match": "*"}
    assert (await put(out["url"], body, headers)).status_code == 200
    return out


async def verify(client, auth, upload_id, sub, role="editor"):
    return await client.post(
        "/api/admin/uploads/verify", json={"uploadId": upload_id}, headers=auth.headers(role, sub)
    )


async def test_verify_rejects_what_is_not_a_video(client, auth, s3c, bucket):
    sub = editor()
    out = await upload_single(
        client, auth, sub, "source", "a.mp4", "video/mp4", b"<html>not a video</html>" * 20
    )
    r = await verify(client, auth, out["uploadId"], sub)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEM + "upload-content-invalid"
    assert "video container" in r.json()["detail"]
    # A rejected object is gone, so nothing can reference it.
    assert s3c.list_objects_v2(Bucket=bucket, Prefix=out["key"]).get("KeyCount") == 0
    # And the rejection was recorded although the response is an error.
    assert (await verify(client, auth, out["uploadId"], sub)).json()[
        "type"
    ] == PROBLEM + "upload-missing"


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
    sub = editor()
    out = await upload_single(client, auth, sub, "source", f"a.{ext}", content_type, head)
    r = await verify(client, auth, out["uploadId"], sub)
    assert r.status_code == 200, r.text


async def test_verify_rejects_a_container_other_than_declared(client, auth):
    sub = editor()
    out = await upload_single(
        client, auth, sub, "source", "a.mkv", "video/x-matroska", mp4_bytes(1000)
    )
    r = await verify(client, auth, out["uploadId"], sub)
    assert r.json()["type"] == PROBLEM + "upload-content-invalid"
    assert r.json()["detected"] == "mp4"


async def test_verify_rejects_a_body_larger_than_declared(client, auth):
    # S3 would refuse this PUT (signed Content-Length); the check catches it anyway.
    sub = editor()
    out = await upload_single(
        client, auth, sub, "source", "a.mp4", "video/mp4", mp4_bytes(3000), declared=1000
    )
    r = await verify(client, auth, out["uploadId"], sub)
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "upload-size-mismatch"
    assert (r.json()["declaredSize"], r.json()["size"]) == (1000, 3000)


async def test_verify_rejects_an_object_over_the_cap(client, auth, s3c, bucket):
    sub = editor()
    out = (await presign(client, auth, "poster", "a.png", "image/png", 100, sub)).json()
    s3c.put_object(
        Bucket=bucket,
        Key=out["key"],
        Body=b"\x89PNG\r\n\x1a\n" + b"\x00" * MiB,
        ContentType="image/png",
    )
    r = await verify(client, auth, out["uploadId"], sub)
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "upload-object-too-large"


async def test_verify_rejects_a_stored_content_type_that_is_not_allowed(client, auth, s3c, bucket):
    sub = editor()
    out = (await presign(client, auth, "source", "a.mp4", "video/mp4", 100, sub)).json()
    s3c.put_object(Bucket=bucket, Key=out["key"], Body=mp4_bytes(100), ContentType="text/html")
    r = await verify(client, auth, out["uploadId"], sub)
    assert r.json()["type"] == PROBLEM + "upload-content-type-mismatch"


async def test_verify_of_a_missing_object(client, auth):
    sub = editor()
    out = (await presign(client, auth, "source", "a.mp4", "video/mp4", 100, sub)).json()
    r = await verify(client, auth, out["uploadId"], sub)
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "upload-missing"
    r = await verify(client, auth, str(uuid.uuid4()), sub)
    assert r.status_code == 404


async def test_verify_checks_art_and_subtitles_too(client, auth):
    sub = editor()
    source = await source_upload(client, auth, sub)
    good = [
        ("poster", "a.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 100),
        ("subtitle", "a.vtt", "text/vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"),
        ("subtitle", "a.srt", "application/x-subrip", b"1\n00:00:00,000 --> 00:00:01,000\nhi\n"),
        ("subtitle", "a.ass", "text/x-ssa", b"[Script Info]\nTitle: x\n"),
    ]
    art = editor()  # five presigns per window per editor
    for kind, name, ctype, body in good:
        attach = source if kind == "subtitle" else None
        out = await upload_single(
            client, auth, sub if attach else art, kind, name, ctype, body, attach_to=attach
        )
        r = await verify(client, auth, out["uploadId"], sub if attach else art)
        assert r.status_code == 200, (name, r.text)
        assert r.json()["attachedTo"] == attach
    out = await upload_single(
        client, auth, art, "poster", "a.png", "image/png", b"GIF89a" + b"\x00" * 100
    )
    r = await verify(client, auth, out["uploadId"], art)
    assert r.json()["type"] == PROBLEM + "upload-content-invalid"


# --- ownership: another editor can neither overwrite nor destroy --------------


async def test_another_editor_cannot_overwrite_or_destroy_a_verified_upload(
    client, auth, s3c, bucket
):
    a, b = editor(), editor()
    body = mp4_bytes(4096)
    out = await upload_single(client, auth, a, "source", "ep.mp4", "video/mp4", body)
    assert (await verify(client, auth, out["uploadId"], a)).status_code == 200

    # B cannot presign A's key: the key is not B's to choose ...
    r = await client.post(
        "/api/admin/presign",
        json={"key": out["key"], "contentType": "video/mp4", "size": 1},
        headers=auth.headers("editor", b),
    )
    assert r.status_code == 422
    # ... and the same file name is another object.
    other = (await presign(client, auth, "source", "ep.mp4", "video/mp4", 1, b)).json()
    assert other["key"] != out["key"]
    # B's verify of A's upload (the old "size: 1" trick) is refused and deletes nothing.
    r = await verify(client, auth, out["uploadId"], b)
    assert r.status_code == 403, r.text
    assert s3c.get_object(Bucket=bucket, Key=out["key"])["Body"].read() == body
    # Even A's own URL cannot replace the verified object: storage refuses the write.
    r = await put(out["url"], mp4_bytes(4096)[::-1], out["headers"])
    assert r.status_code == 412, r.text
    assert s3c.get_object(Bucket=bucket, Key=out["key"])["Body"].read() == body
    # An admin may check anyone's upload; a verified one stays as it is.
    r = await verify(client, auth, out["uploadId"], None, role="admin")
    assert r.status_code == 200, r.text
    assert s3c.get_object(Bucket=bucket, Key=out["key"])["Body"].read() == body


async def test_only_a_presigned_or_completed_upload_is_checked(
    client, auth, media_app, s3c, bucket
):
    sub = editor()
    # An open multipart upload is completed, not verified.
    upload = await create_upload(client, auth, sub, 1000)
    r = await verify(client, auth, upload["uploadId"], sub)
    assert r.status_code == 409, r.text
    assert r.json()["type"] == PROBLEM + "upload-not-open"
    # A row from before keys were made from upload ids is never checked, so a
    # failure cannot delete an object some other upload may share.
    legacy_key = f"uploads/shared-{uuid.uuid4().hex[:6]}/a.mp4"
    s3c.put_object(Bucket=bucket, Key=legacy_key, Body=b"x" * 10, ContentType="video/mp4")
    legacy = uuid.uuid4()
    async with media_app.state.runtime.database.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO media.uploads (id, key, kind, asset_kind, content_type, size, "
                "status, created_by) VALUES (:id, :key, 'single', 'source', 'video/mp4', 1, "
                "'pending', :sub)"
            ),
            {"id": legacy, "key": legacy_key, "sub": sub},
        )
    r = await verify(client, auth, str(legacy), sub)
    assert r.status_code == 409, r.text
    assert s3c.head_object(Bucket=bucket, Key=legacy_key)["ContentLength"] == 10


async def test_a_verified_upload_is_announced_through_the_outbox(client, auth, media_app):
    sub = editor()
    source = await source_upload(client, auth, sub)
    body = b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"
    out = await upload_single(
        client, auth, sub, "subtitle", "ep.en.vtt", "text/vtt", body, attach_to=source
    )
    assert (await verify(client, auth, out["uploadId"], sub)).status_code == 200
    assert (await verify(client, auth, out["uploadId"], sub)).status_code == 200
    async with media_app.state.runtime.database.transaction() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT envelope FROM media.outbox WHERE event_type = 'media.upload.verified' "
                    "AND envelope->'data'->>'uploadId' = :id"
                ),
                {"id": out["uploadId"]},
            )
        ).all()
    assert len(rows) == 1  # checking a verified upload again announces nothing new
    assert rows[0][0]["data"] == {
        "uploadId": out["uploadId"],
        "key": out["key"],
        "kind": "subtitle",
        "owner": sub,
        "size": len(body),
        "contentType": "text/vtt",
        "format": "vtt",
        "filename": "ep.en.vtt",
        "attachedTo": source,
    }


# --- multipart, resumable -----------------------------------------------------


async def create_upload(client, auth, sub, size, filename="ep.mp4", content_type="video/mp4"):
    r = await client.post(
        "/api/admin/uploads",
        json={"kind": "source", "filename": filename, "contentType": content_type, "size": size},
        headers=auth.headers("editor", sub),
    )
    assert r.status_code == 201, r.text
    assert r.json()["key"] == f"uploads/{r.json()['uploadId']}/{filename}"
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
    upload = await create_upload(client, auth, sub, len(body))
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
    stored = s3c.get_object(Bucket=bucket, Key=upload["key"])["Body"].read()
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
    upload = await create_upload(client, auth, sub, len(body))
    await put_parts(client, auth, sub, upload, body, [1, 2])
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/complete", headers=auth.headers("editor", sub)
    )
    assert r.status_code == 200, r.text
    assert s3c.head_object(Bucket=bucket, Key=upload["key"])["ContentLength"] == len(body)


async def test_complete_with_wrong_etags_is_refused(client, auth):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    body = mp4_bytes(1000)
    upload = await create_upload(client, auth, sub, len(body))
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
    upload = await create_upload(client, auth, sub, len(body))
    await put_parts(client, auth, sub, upload, body, [1])
    r = await client.post(
        f"/api/admin/uploads/{upload['uploadId']}/complete", headers=auth.headers("editor", sub)
    )
    assert r.status_code == 422
    assert r.json()["type"] == PROBLEM + "upload-content-invalid"
    assert s3c.list_objects_v2(Bucket=bucket, Prefix=upload["key"]).get("KeyCount") == 0
    r = await client.get(
        f"/api/admin/uploads/{upload['uploadId']}", headers=auth.headers("editor", sub)
    )
    assert r.json()["status"] == "rejected"


async def test_part_numbers_outside_the_upload_are_refused(client, auth):
    sub = f"user_{uuid.uuid4().hex[:8]}"
    upload = await create_upload(client, auth, sub, 1000)
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
    upload = await create_upload(client, auth, sub, len(body))
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
    upload = await create_upload(client, auth, owner, 1000)
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
    old = await create_upload(client, auth, sub, 1000)
    fresh = await create_upload(client, auth, sub, 1000)
    stale_presign = (await presign(client, auth, "source", "a.mp4", "video/mp4", 10, sub)).json()
    async with media_app.state.runtime.database.transaction() as s:
        await s.execute(
            text(
                "UPDATE media.uploads SET created_at = now() - interval '30 hours' "
                "WHERE id = :id OR key = :key"
            ),
            {"id": old["uploadId"], "key": stale_presign["key"]},
        )
    # An S3 upload no row knows (its row never committed).
    orphan = s3c.create_multipart_upload(
        Bucket=bucket, Key=f"uploads/{uuid.uuid4()}/a.mp4", ContentType="video/mp4"
    )
    ids = await s3_upload_ids(media_app)

    ctx = media_app.state.runtime.context
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
            r = await presign(c, auth, "source", "a.mp4", "video/mp4", 10, sub)
            assert r.status_code == 200, r.text
        r = await presign(other, auth, "source", "a.mp4", "video/mp4", 10, sub)
        assert r.status_code == 429
        assert r.json()["type"] == PROBLEM + "rate-limited"
        retry_after = int(r.headers["retry-after"])
        assert 1 <= retry_after <= 2
        # Another user is not affected.
        assert (await presign(client, auth, "source", "a.mp4", "video/mp4", 10)).status_code == 200
        # Multipart starts draw from the same budget.
        r = await client.post(
            "/api/admin/uploads",
            json={"kind": "source", "filename": "a.mp4", "contentType": "video/mp4", "size": 10},
            headers=auth.headers("editor", sub),
        )
        assert r.status_code == 429
        await asyncio.sleep(retry_after + 0.1)
        assert (
            await presign(client, auth, "source", "a.mp4", "video/mp4", 10, sub)
        ).status_code == 200


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
