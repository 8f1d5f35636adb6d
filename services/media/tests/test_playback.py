"""Private HLS: a real ffmpeg ladder in S3, registered from events, played by a crawler."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import text

from studio_common.events import (
    EpisodeDeletedV1,
    EpisodeUploadedV1,
    EpisodeVisibilityChangedV1,
    TitleDeletedV1,
    TranscodeCompletedV1,
    TranscodeFailedV1,
    TranscodePlayableV1,
    TranscodeStartedV1,
    subject_for,
)
from studio_common.settings import SettingsError
from studio_common.testing.infra import free_port
from studio_common.testing.jetstream import envelope_of, stream_messages, wait_until
from studio_common.testing.plugin import serve_app
from studio_media import tokens
from studio_media.config import MediaSettings
from studio_media.main import create_app
from studio_media.service.folders import sweep_folders
from studio_media.service.presence import check_presence
from studio_media.storage import MediaStorage

PROBLEM = "urn:studio:problem:"
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".vtt": "text/vtt",
    ".jpg": "image/jpeg",
}


@pytest.fixture(scope="session")
def ladder(tmp_path_factory) -> Path:
    """A tiny real HLS ladder: 3 s, 320x180 and 160x90, 1 s segments, plus English subtitles."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed")
    out = tmp_path_factory.mktemp("hls")
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=3",
            "-filter_complex", "[0:v]split=2[a][b];[b]scale=160:90[c]",
            "-map", "[a]", "-map", "[c]",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "24", "-keyint_min", "24",
            "-sc_threshold", "0", "-b:v:0", "300k", "-b:v:1", "100k",
            "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
            "-hls_segment_filename", str(out / "%v" / "seg_%03d.ts"),
            "-master_pl_name", "master.m3u8",
            "-var_stream_map", "v:0,name:180p v:1,name:90p",
            str(out / "%v" / "index.m3u8"),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=160x90:duration=1", "-frames:v", "1", str(out / "thumb.jpg")],
        check=True,
        timeout=30,
    )  # fmt: skip
    subs = out / "subs"
    subs.mkdir()
    (subs / "en.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nHello\n")
    (subs / "en.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:3.0,\nen.vtt\n#EXT-X-ENDLIST\n"
    )
    master = (out / "master.m3u8").read_text()
    master = master.replace("#EXT-X-STREAM-INF:", '#EXT-X-STREAM-INF:SUBTITLES="subs",')
    master = master.replace(
        "#EXTM3U\n",
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",'
        'URI="subs/en.m3u8"\n',
        1,
    )
    (out / "master.m3u8").write_text(master)
    assert len(list(out.glob("*/seg_*.ts"))) >= 6
    return out


def version_prefix(episode_id: uuid.UUID) -> str:
    """Where a transcode attempt of the episode writes: hls/{episodeId}/{version}/."""
    return f"hls/{episode_id}/{uuid.uuid4().hex}/"


def ladder_files(ladder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ladder)): p.read_bytes() for p in ladder.rglob("*") if p.is_file()}


def upload_ladder(s3c, bucket: str, ladder: Path, prefix: str) -> None:
    for rel, data in ladder_files(ladder).items():
        ctype = CONTENT_TYPES[Path(rel).suffix]
        s3c.put_object(Bucket=bucket, Key=prefix + rel, Body=data, ContentType=ctype)


def completed(episode_id: uuid.UUID, prefix: str) -> TranscodeCompletedV1:
    """The transcoder's word that the ladder under ``prefix`` is complete."""
    return TranscodeCompletedV1(
        episode_id=episode_id,
        job_id=uuid.uuid4(),
        hls_master_key=prefix + "master.m3u8",
        hls_master_url="https://cdn.example/x",
    )


async def asset_state(app, episode_id) -> str | None:
    async with app.state.runtime.database.transaction() as s:
        return await s.scalar(
            text("SELECT state FROM media.episode_assets WHERE episode_id = :id"),
            {"id": episode_id},
        )


async def asset_public(app, episode_id) -> bool | None:
    async with app.state.runtime.database.transaction() as s:
        return await s.scalar(
            text("SELECT public FROM media.episode_assets WHERE episode_id = :id"),
            {"id": episode_id},
        )


class Episodes:
    def __init__(self, app, s3c, bucket, ladder, publish) -> None:
        self.app, self.s3c, self.bucket, self.ladder = app, s3c, bucket, ladder
        self.publish = publish

    async def wait_state(self, episode_id, state: str) -> None:
        async def reached() -> bool:
            return await asset_state(self.app, episode_id) == state

        await wait_until(reached, within=15)

    async def announce(self, episode_id: uuid.UUID) -> None:
        """Catalog's word that the episode was uploaded, from before any transcode event."""
        await self.publish(
            EpisodeUploadedV1(
                episode_id=episode_id,
                title_id=uuid.uuid4(),
                title_slug="some-show",
                season_id=uuid.uuid4(),
                season_number=1,
                episode_number=1,
                source_key=f"uploads/{uuid.uuid4()}/source.mp4",
            ),
            occurred_at=datetime.now(UTC) - timedelta(minutes=10),
        )

    async def known(self, episode_id: uuid.UUID | None = None) -> uuid.UUID:
        """An episode catalog announced (uploaded): media takes transcode events for it."""
        episode_id = episode_id or uuid.uuid4()
        await self.announce(episode_id)
        await self.wait_state(episode_id, "pending")
        return episode_id

    async def ready(self, *, playable_only: bool = False) -> tuple[uuid.UUID, str]:
        """An episode whose ladder is in S3 and registered; returns (id, its HLS prefix)."""
        episode_id = await self.known()
        prefix = version_prefix(episode_id)
        upload_ladder(self.s3c, self.bucket, self.ladder, prefix)
        key = prefix + "master.m3u8"
        if playable_only:
            event = TranscodePlayableV1(
                episode_id=episode_id, job_id=uuid.uuid4(), hls_master_key=key
            )
        else:
            event = TranscodeCompletedV1(
                episode_id=episode_id,
                job_id=uuid.uuid4(),
                hls_master_key=key,
                hls_master_url=f"https://cdn.example/{key}",
                renditions=["180p", "90p"],
            )
        await self.publish(event)
        await self.wait_state(episode_id, "playable" if playable_only else "ready")
        return episode_id, prefix


@pytest.fixture
def episodes(media_app, s3c, bucket, ladder, publish_event) -> Episodes:
    return Episodes(media_app, s3c, bucket, ladder, publish_event)


async def hls_url(client, auth, episode_id, headers=None) -> httpx.Response:
    return await client.get(f"/api/episodes/{episode_id}/hls", headers=headers or auth.viewer)


async def crawl(start: str) -> dict[str, httpx.Response]:
    """Follow every playlist link from ``start`` as a player would; every response by URL."""
    seen: dict[str, httpx.Response] = {}
    queue = [start]
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as plain:
        while queue:
            url = queue.pop(0)
            if url in seen:
                continue
            r = await plain.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
            seen[url] = r
            if urlsplit(url).path.endswith(".m3u8"):
                assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
                for line in r.text.splitlines():
                    line = line.strip()
                    links = re.findall(r'URI="([^"]+)"', line) if line.startswith("#") else [line]
                    queue += [urljoin(url, link) for link in links if link]
    return seen


def relative(url: str, episode_id) -> str:
    # After the episode id: the version folder, then the path inside it.
    return urlsplit(url).path.split(f"/{episode_id}/", 1)[1].split("/", 1)[1]


async def test_every_playlist_and_segment_plays_through_the_token_url(
    client, auth, episodes, ladder
):
    episode_id, _ = await episodes.ready()
    r = await hls_url(client, auth, episode_id)
    assert r.status_code == 200, r.text
    out = r.json()
    assert r.headers["cache-control"] == "no-store"
    url = out["url"]
    assert re.search(
        rf"/hls/\d+\.[A-Za-z0-9_-]{{43}}/{episode_id}/[0-9a-f]{{32}}/master\.m3u8$", url
    )
    expires = datetime.fromisoformat(out["expiresAt"])
    assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)

    seen = await crawl(url)
    files = ladder_files(ladder)
    reached = {relative(u, episode_id): resp for u, resp in seen.items()}
    expected = {rel for rel in files if not rel.endswith(".jpg")}
    assert set(reached) == expected  # every variant, every segment, the subtitles
    for rel, resp in reached.items():
        assert resp.content == files[rel], rel
        assert resp.headers["content-type"].split(";")[0] == CONTENT_TYPES[Path(rel).suffix]
    segment = next(resp for rel, resp in reached.items() if rel.endswith(".ts"))
    assert segment.headers["accept-ranges"] == "bytes"
    assert "max-age" in segment.headers["cache-control"]


async def test_thumbnails_and_ranges(client, auth, episodes, ladder):
    episode_id, _ = await episodes.ready()
    url = (await hls_url(client, auth, episode_id)).json()["url"]
    base = url.rsplit("/", 1)[0]
    segment = (ladder / "180p" / "seg_001.ts").read_bytes()
    async with httpx.AsyncClient() as plain:
        r = await plain.get(f"{base}/thumb.jpg")
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/jpeg"

        r = await plain.get(f"{base}/180p/seg_001.ts", headers={"Range": "bytes=0-99"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes 0-99/{len(segment)}"
        assert r.content == segment[:100]
        r = await plain.get(f"{base}/180p/seg_001.ts", headers={"Range": "bytes=-10"})
        assert r.status_code == 206
        assert r.content == segment[-10:]
        r = await plain.get(
            f"{base}/180p/seg_001.ts", headers={"Range": f"bytes={len(segment) + 10}-"}
        )
        assert r.status_code == 416
        assert r.headers["content-range"] == f"bytes */{len(segment)}"
        # Several ranges at once: the whole file, which RFC 9110 allows.
        r = await plain.get(f"{base}/180p/seg_001.ts", headers={"Range": "bytes=0-1,5-6"})
        assert r.status_code == 200
        assert r.content == segment

        r = await plain.get(f"{base}/180p/seg_999.ts")
        assert r.status_code == 404

        # HEAD, as CDNs and players send it: a GET's headers, no body.
        for name, ctype in (("180p/seg_001.ts", "video/mp2t"), ("master.m3u8", None)):
            r = await plain.head(f"{base}/{name}")
            assert r.status_code == 200, name
            assert r.content == b""
            size = len((ladder / name).read_bytes())
            assert r.headers["content-length"] == str(size)
            if ctype:
                assert r.headers["content-type"] == ctype
        assert (await plain.head(f"{base}/180p/seg_999.ts")).status_code == 404
        assert (
            await plain.head(f"{base.replace('/hls/', '/hls/1')}/master.m3u8")
        ).status_code == 403


def token_url(base_url: str, token: str, episode_id, path: str) -> str:
    return f"{base_url}/hls/{token}/{episode_id}/{path}"


PATHS = ["master.m3u8", "180p/index.m3u8", "90p/seg_000.ts", "subs/en.vtt"]


async def test_expired_forged_and_other_episode_tokens_are_refused(
    client, auth, episodes, signing_key
):
    episode_id, prefix = await episodes.ready()
    other_id, _ = await episodes.ready()
    version = prefix.split("/")[2]
    base = client.base_url.__str__().rstrip("/")
    now = int(time.time())
    key = signing_key
    good = tokens.sign(key, episode_id, now + 300)
    expired = tokens.sign(key, episode_id, now - 1)
    cases = {
        "expired": (expired, episode_id, "playback-token-expired"),
        "wrong key": (tokens.sign(b"k" * 40, episode_id, now + 300), episode_id, "playback-token-invalid"),
        "tampered expiry": (f"{now + 999_999}.{good.split('.')[1]}", episode_id, "playback-token-invalid"),
        "tampered mac": (good[:-2] + ("AA" if good[-2:] != "AA" else "BB"), episode_id, "playback-token-invalid"),
        "garbage": ("not-a-token", episode_id, "playback-token-invalid"),
        "other episode": (good, other_id, "playback-token-invalid"),
        "expired forgery": (f"{now - 5}.{'A' * 43}", episode_id, "playback-token-invalid"),
    }  # fmt: skip
    async with httpx.AsyncClient() as plain:
        for path in PATHS:
            r = await plain.get(token_url(base, good, episode_id, f"{version}/{path}"))
            assert r.status_code == 200, (path, r.text)
            for name, (token, target, slug) in cases.items():
                r = await plain.get(token_url(base, token, target, f"{version}/{path}"))
                assert r.status_code == 403, (name, path, r.text)
                assert r.json()["type"] == PROBLEM + slug, (name, path)
                assert r.headers["content-type"] == "application/problem+json"


def other_spellings(token: str) -> dict[str, str]:
    """The same expiry and MAC written otherwise; each is percent-encoded for a URL path."""
    expiry, mac = token.split(".")
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in expiry)
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in expiry)
    return {
        "leading zero": f"0{expiry}.{mac}",
        "two leading zeros": f"00{expiry}.{mac}",
        "arabic-indic digits": quote(f"{arabic_indic}.{mac}"),
        "fullwidth digits": quote(f"{fullwidth}.{mac}"),
        "one non-ascii digit": quote(f"{expiry[:-1]}{chr(0x0660 + int(expiry[-1]))}.{mac}"),
        "trailing newline": f"{token}%0A",
        "trailing carriage return": f"{token}%0D",
        "trailing space": f"{token}%20",
        "leading space": f"%20{token}",
        "plus sign": f"%2B{expiry}.{mac}",
        "padded mac": f"{token}%3D",
    }


@pytest.mark.parametrize("spelling", list(other_spellings("1.m")))
async def test_a_token_has_one_spelling(client, auth, episodes, signing_key, spelling):
    episode_id, prefix = await episodes.ready()
    master = prefix.split("/")[2] + "/master.m3u8"
    base = str(client.base_url).rstrip("/")
    good = tokens.sign(signing_key, episode_id, int(time.time()) + 300)
    other = other_spellings(good)[spelling]
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(token_url(base, good, episode_id, master))).status_code == 200
        r = await plain.get(token_url(base, other, episode_id, master))
    assert r.status_code == 403, (other, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM + "playback-token-invalid"


def test_verify_accepts_only_the_signed_string(signing_key):
    episode_id = uuid.uuid4()
    expires_at = int(time.time()) + 300
    good = tokens.sign(signing_key, episode_id, expires_at)
    assert tokens.verify([signing_key], good, episode_id) == expires_at
    expiry, mac = good.split(".")
    for other in (
        f"0{good}",
        f"{good}\n",
        f"{good}\r\n",
        f" {good}",
        "".join(chr(0x0660 + int(d)) for d in expiry) + f".{mac}",
        "".join(chr(0x0966 + int(d)) for d in expiry) + f".{mac}",  # Devanagari
    ):
        with pytest.raises(tokens.PlaybackTokenInvalid):
            tokens.verify([signing_key], other, episode_id)


async def test_a_token_issued_by_the_api_opens_only_its_episode(client, auth, episodes):
    a, prefix_a = await episodes.ready()
    _b, prefix_b = await episodes.ready()
    url_a = (await hls_url(client, auth, a)).json()["url"]
    folder_a, folder_b = prefix_a.removeprefix("hls/"), prefix_b.removeprefix("hls/")
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(url_a)).status_code == 200
        for path in PATHS:
            r = await plain.get(url_a.replace(f"/{folder_a}master.m3u8", f"/{folder_b}{path}"))
            assert r.status_code == 403, path
            assert r.json()["type"] == PROBLEM + "playback-token-invalid"


async def raw_get(base_url: str, path: str) -> int:
    """A GET with the path exactly as given: no client-side dot-segment removal."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_path_traversal_inside_the_token_path_is_rejected(
    client, auth, episodes, s3c, bucket
):
    episode_id, _ = await episodes.ready()
    # Something a traversal would like to reach: another folder of the bucket.
    s3c.put_object(Bucket=bucket, Key="hls/secret.m3u8", Body=b"#EXTM3U\n")
    url = (await hls_url(client, auth, episode_id)).json()["url"]
    path = urlsplit(url).path.rsplit("/", 1)[0]
    base = str(client.base_url).rstrip("/")
    attempts = [
        "../../../secret.m3u8",
        "180p/../../../../secret.m3u8",
        "%2e%2e/%2e%2e/%2e%2e/secret.m3u8",
        "..%2F..%2F..%2Fsecret.m3u8",
        "180p/%2E%2E/index.m3u8",
        "./master.m3u8",
        "180p//index.m3u8",
        "..%5C..%5Csecret.m3u8",
        "180p/index.m3u8%00.ts",
        "180p/seg_000.ts.exe",
    ]
    for attempt in attempts:
        status = await raw_get(base, f"{path}/{attempt}")
        assert status in (400, 404), (attempt, status)
        assert status != 200
    async with httpx.AsyncClient() as plain:
        r = await plain.get(f"{base}{path}/%2e%2e/%2e%2e/%2e%2e/secret.m3u8")
        assert r.status_code == 400
        assert r.json()["type"] == PROBLEM + "invalid-hls-path"
        # The same traversal with a bad token is a 403: the token is checked first.
        r = await plain.get(f"{base}/hls/1.{'A' * 43}/{episode_id}/%2e%2e/secret.m3u8")
        assert r.status_code == 403


async def test_unknown_not_ready_and_failed_episodes(client, auth, episodes):
    r = await hls_url(client, auth, uuid.uuid4())
    assert r.status_code == 404
    assert r.json()["type"] == PROBLEM + "not-found"

    episode_id = await episodes.known()
    r = await hls_url(client, auth, episode_id)
    assert r.status_code == 409
    assert r.json()["type"] == PROBLEM + "episode-not-ready"
    assert r.json()["state"] == "pending"

    failed = await episodes.known()
    await episodes.publish(TranscodeFailedV1(episode_id=failed, job_id=uuid.uuid4(), reason="x"))
    await episodes.wait_state(failed, "failed")
    r = await hls_url(client, auth, failed)
    assert r.status_code == 409
    # Not "still processing": it says the transcode failed.
    assert r.json()["type"] == PROBLEM + "episode-transcode-failed"
    assert "failed" in r.json()["detail"]

    # Anonymous viewers are asked to sign in.
    r = await client.get(f"/api/episodes/{episode_id}/hls")
    assert r.status_code == 401


async def test_a_playable_episode_plays_before_it_completes(client, auth, episodes):
    episode_id, _ = await episodes.ready(playable_only=True)
    r = await hls_url(client, auth, episode_id)
    assert r.status_code == 200, r.text
    assert len([u for u in await crawl(r.json()["url"]) if u.endswith(".ts")]) >= 6


async def test_a_late_event_does_not_overwrite_a_newer_state(client, auth, episodes):
    episode_id, prefix = await episodes.ready()
    # A "playable" that happened before "completed" but arrives after it.
    await episodes.publish(
        TranscodePlayableV1(
            episode_id=episode_id, job_id=uuid.uuid4(), hls_master_key=prefix + "master.m3u8"
        ),
        occurred_at=datetime.now(UTC) - timedelta(hours=1),
    )
    await asyncio.sleep(1.0)
    assert await asset_state(episodes.app, episode_id) == "ready"


async def test_public_episodes_play_for_anyone_private_ones_need_a_sign_in(client, auth, episodes):
    episode_id, _ = await episodes.ready()
    anonymous = {"Accept": "application/json"}
    r = await hls_url(client, auth, episode_id, headers=anonymous)
    assert r.status_code == 401
    assert r.json()["type"] == PROBLEM + "unauthorized"
    assert (await hls_url(client, auth, episode_id)).status_code == 200
    assert (await hls_url(client, auth, uuid.uuid4(), headers=anonymous)).status_code == 404

    await episodes.publish(
        EpisodeVisibilityChangedV1(episode_id=episode_id, title_id=uuid.uuid4(), public=True)
    )
    await wait_until(lambda: asset_public(episodes.app, episode_id))
    r = await hls_url(client, auth, episode_id, headers=anonymous)
    assert r.status_code == 200, r.text
    # The URL plays like any other: every playlist and segment answers.
    responses = await crawl(r.json()["url"])
    assert responses
    assert all(resp.status_code == 200 for resp in responses.values())


async def test_visibility_and_transcode_events_are_ordered_apart(episodes):
    # Catalog announces the visibility before the transcode has even started...
    episode_id, title_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    await episodes.publish(
        EpisodeVisibilityChangedV1(episode_id=episode_id, title_id=title_id, public=True),
        occurred_at=now,
    )
    await wait_until(lambda: asset_public(episodes.app, episode_id))
    assert await asset_state(episodes.app, episode_id) == "pending"
    # ...an older transcode event still applies, and keeps the visibility...
    prefix = version_prefix(episode_id)
    upload_ladder(episodes.s3c, episodes.bucket, episodes.ladder, prefix)
    await episodes.publish(completed(episode_id, prefix), occurred_at=now - timedelta(minutes=1))
    await episodes.wait_state(episode_id, "ready")
    assert await asset_public(episodes.app, episode_id) is True
    # ...and a stale visibility event changes nothing.
    await episodes.publish(
        EpisodeVisibilityChangedV1(episode_id=episode_id, title_id=title_id, public=False),
        occurred_at=now - timedelta(hours=1),
    )
    await asyncio.sleep(1.0)
    assert await asset_public(episodes.app, episode_id) is True


async def test_deleted_episodes_and_titles_drop_their_assets(client, auth, episodes, s3c, bucket):
    episode_id, prefix = await episodes.ready()
    url = (await hls_url(client, auth, episode_id)).json()["url"]
    await episodes.publish(EpisodeDeletedV1(episode_id=episode_id, title_id=uuid.uuid4()))
    await episodes.wait_state(episode_id, "deleted")
    assert (await hls_url(client, auth, episode_id)).status_code == 404
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(url)).status_code == 404
    assert s3c.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount") == 0

    # A "completed" that happened before the deletion cannot bring it back.
    await episodes.publish(
        completed(episode_id, prefix), occurred_at=datetime.now(UTC) - timedelta(minutes=5)
    )
    await asyncio.sleep(1.0)
    assert await asset_state(episodes.app, episode_id) == "deleted"

    one, prefix_one = await episodes.ready()
    two, prefix_two = await episodes.ready()
    await episodes.publish(
        TitleDeletedV1(title_id=uuid.uuid4(), slug="gone", episode_ids=[one, two])
    )
    await episodes.wait_state(two, "deleted")
    assert await asset_state(episodes.app, one) == "deleted"
    for p in (prefix_one, prefix_two):
        assert s3c.list_objects_v2(Bucket=bucket, Prefix=p).get("KeyCount") == 0


async def test_a_master_key_outside_hls_is_never_registered(episodes, client, auth):
    episode_id = uuid.uuid4()
    await episodes.publish(
        TranscodeCompletedV1(
            episode_id=episode_id,
            job_id=uuid.uuid4(),
            hls_master_key="uploads/../secrets/master.m3u8",
            hls_master_url="x",
        )
    )
    marker = await episodes.known()
    await episodes.publish(TranscodeFailedV1(episode_id=marker, job_id=uuid.uuid4(), reason="x"))
    await episodes.wait_state(marker, "failed")  # the bad event was handled before this one
    assert await asset_state(episodes.app, episode_id) is None


async def test_transcode_events_for_an_episode_never_announced_are_dead_lettered(
    episodes, nats_url, event_namespace
):
    ghost = uuid.uuid4()
    prefix = version_prefix(ghost)
    sent = [
        await episodes.publish(
            TranscodeStartedV1(episode_id=ghost, job_id=uuid.uuid4(), attempt=1, hls_prefix=prefix)
        ),
        await episodes.publish(
            TranscodeCompletedV1(
                episode_id=ghost, job_id=uuid.uuid4(), hls_master_key=prefix + "master.m3u8"
            )
        ),
        await episodes.publish(
            TranscodeFailedV1(episode_id=ghost, job_id=uuid.uuid4(), reason="x")
        ),
    ]
    dlq = f"{event_namespace.subject_root}.dlq.>"

    async def parked() -> set[str] | None:
        found = {
            envelope_of(m)["id"]
            for m in await stream_messages(nats_url, event_namespace.stream, dlq)
        }
        wanted = {str(e.id) for e in sent}
        return wanted if wanted <= found else None

    await wait_until(parked, within=45, interval=0.5)
    # No ghost row, no folder of an episode nobody announced.
    assert await asset_state(episodes.app, ghost) is None
    database = episodes.app.state.runtime.database
    async with database.transaction() as session:
        folders = await session.scalar(
            text("SELECT count(*) FROM media.hls_folders WHERE episode_id = :e"), {"e": ghost}
        )
    assert folders == 0


async def test_a_transcode_event_ahead_of_catalogs_applies_once_the_episode_is_known(
    client, auth, episodes, s3c, bucket
):
    # Event types are consumed apart: "completed" may be handled before "uploaded".
    episode_id = uuid.uuid4()
    prefix = version_prefix(episode_id)
    upload_ladder(s3c, bucket, episodes.ladder, prefix)
    await episodes.publish(
        TranscodeCompletedV1(
            episode_id=episode_id, job_id=uuid.uuid4(), hls_master_key=prefix + "master.m3u8"
        )
    )
    await asyncio.sleep(0.5)
    assert await asset_state(episodes.app, episode_id) is None
    await episodes.announce(episode_id)
    # The retried "completed" applies: the episode plays.
    await episodes.wait_state(episode_id, "ready")
    assert (await hls_url(client, auth, episode_id)).status_code == 200


async def test_playback_url_issuance_is_rate_limited(client, auth, episodes, replica):
    episode_id, _ = await episodes.ready()
    sub = f"user_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=replica.state.base_url) as other:
        for i in range(5):
            c = client if i % 2 else other
            r = await hls_url(c, auth, episode_id, auth.headers("viewer", sub))
            assert r.status_code == 200, r.text
        r = await hls_url(client, auth, episode_id, auth.headers("viewer", sub))
        assert r.status_code == 429
        assert r.json()["type"] == PROBLEM + "rate-limited"
        retry_after = int(r.headers["retry-after"])
        await asyncio.sleep(retry_after + 0.1)
        r = await hls_url(other, auth, episode_id, auth.headers("viewer", sub))
        assert r.status_code == 200


async def test_redirect_mode_plays_through_presigned_segments(
    auth, episodes, ladder, replica, s3_endpoint_url, signing_key
):
    """The other replica redirects segments to S3; playlists stay on the token path."""
    episode_id, _ = await episodes.ready()
    async with httpx.AsyncClient(base_url=replica.state.base_url) as c:
        url = (await hls_url(c, auth, episode_id)).json()["url"]
    assert url.startswith(replica.state.base_url)
    seen = await crawl(url)
    files = ladder_files(ladder)
    reached = {relative(u, episode_id) for u in seen}
    assert reached == {rel for rel in files if not rel.endswith(".jpg")}
    async with httpx.AsyncClient() as plain:
        r = await plain.get(url.replace("master.m3u8", "180p/seg_000.ts"))
        assert r.status_code == 302
        assert r.headers["location"].startswith(s3_endpoint_url)
        assert "X-Amz-Signature=" in r.headers["location"]
        r = await plain.get(url.replace("master.m3u8", "180p/index.m3u8"))
        assert r.status_code == 200  # playlists are never redirected
        # Expired tokens do not get a redirect either.
        expired = tokens.sign(signing_key, episode_id, int(time.time()) - 1)
        r = await plain.get(f"{replica.state.base_url}/hls/{expired}/{episode_id}/180p/seg_000.ts")
        assert r.status_code == 403


# --- CDN mode -----------------------------------------------------------------


def _cf_b64decode(value: str) -> bytes:
    return base64.b64decode(value.replace("-", "+").replace("_", "=").replace("~", "/"))


@pytest.fixture(scope="module")
def cdn_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def cdn_settings(
    media_settings: dict[str, Any], cdn_key: rsa.RSAPrivateKey, **extra: Any
) -> MediaSettings:
    """A second app's settings: CloudFront signing with ``cdn_key``, no consumers or relay."""
    pem = cdn_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return MediaSettings(
        **{
            **media_settings,
            "run_consumers": False,
            "run_outbox_relay": False,
            "playback_mode": "cdn",
            "cdn_base_url": "https://cdn.studio.test",
            "cdn_key_pair_id": "K2JCJMDEHXQW5F",
            "cdn_private_key": pem,
            **extra,
        }
    )


async def test_cdn_mode_signs_a_wildcard_policy_for_the_episode_folder(
    media_settings, media_app, episodes, auth, cdn_key, s3c, bucket
):
    episode_id, prefix = await episodes.ready()
    settings = cdn_settings(media_settings, cdn_key, cdn_cookie_domain="studio.test")
    async with serve_app(create_app(settings)) as c:
        r = await c.get(f"/api/episodes/{episode_id}/hls", headers=auth.viewer)
        assert r.status_code == 200, r.text
        out = r.json()
        url = urlsplit(out["url"])
        assert (
            f"{url.scheme}://{url.netloc}{url.path}"
            == f"https://cdn.studio.test/{prefix}master.m3u8"
        )
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert q["Key-Pair-Id"] == "K2JCJMDEHXQW5F"

        policy_bytes = _cf_b64decode(q["Policy"])
        statement = json.loads(policy_bytes)["Statement"][0]
        assert statement["Resource"] == f"https://cdn.studio.test/{prefix}*"
        expires = datetime.fromisoformat(out["expiresAt"])
        assert statement["Condition"]["DateLessThan"]["AWS:EpochTime"] == int(expires.timestamp())
        # The signature verifies with the public half (CloudFront: RSA-SHA1, PKCS#1 v1.5).
        cdn_key.public_key().verify(
            _cf_b64decode(q["Signature"]),
            policy_bytes,
            padding.PKCS1v15(),
            hashes.SHA1(),  # noqa: S303
        )
        # The same policy as cookies, for the relative requests that carry no query.
        assert out["cookies"] == {
            "CloudFront-Policy": q["Policy"],
            "CloudFront-Signature": q["Signature"],
            "CloudFront-Key-Pair-Id": q["Key-Pair-Id"],
        }
        set_cookies = r.headers.get_list("set-cookie")
        assert len(set_cookies) == 3
        assert all(
            "Domain=studio.test" in h and "Secure" in h and "HttpOnly" in h for h in set_cookies
        )

        # Made public by catalog, the episode gets a plain CDN URL.
        title_id = uuid.uuid4()
        await episodes.publish(
            EpisodeVisibilityChangedV1(episode_id=episode_id, title_id=title_id, public=True)
        )
        await wait_until(lambda: asset_public(media_app, episode_id))
        r = await c.get(f"/api/episodes/{episode_id}/hls", headers=auth.viewer)
        # ... of its unsigned copy: public and private folders never share a prefix.
        assert r.json() == {
            "url": f"https://cdn.studio.test/public/{prefix}master.m3u8",
            "expiresAt": None,
            "cookies": None,
            "subtitles": [],
            "fonts": [],
        }
        copied = s3c.list_objects_v2(Bucket=bucket, Prefix="public/" + prefix)["KeyCount"]
        assert copied == s3c.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] > 0
        # Private again: signed again.
        await episodes.publish(
            EpisodeVisibilityChangedV1(episode_id=episode_id, title_id=title_id, public=False)
        )

        async def private() -> bool:
            return await asset_public(media_app, episode_id) is False

        await wait_until(private)
        r = await c.get(f"/api/episodes/{episode_id}/hls", headers=auth.viewer)
        assert r.json()["expiresAt"] is not None
        # The unsigned copy is gone at once; the private folder stays.
        assert s3c.list_objects_v2(Bucket=bucket, Prefix="public/" + prefix)["KeyCount"] == 0
        assert s3c.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] > 0


# --- versions (ADR 6) -----------------------------------------------------------


async def playability_events(nats_url, event_namespace, episode_id) -> list[dict]:
    subject = subject_for(event_namespace.subject_root, "media.episode.playability_changed")
    found = [
        envelope_of(m) for m in await stream_messages(nats_url, event_namespace.stream, subject)
    ]
    return [e["data"] for e in found if e["data"]["episodeId"] == str(episode_id)]


async def test_a_retranscode_is_served_from_its_own_folder_and_the_old_one_retires(
    client, auth, episodes, s3c, bucket, media_app, nats_url, event_namespace
):
    episode_id, first = await episodes.ready()
    old_url = (await hls_url(client, auth, episode_id)).json()["url"]
    # media announced, after recording it, that it serves the episode.
    announced = await wait_until(lambda: playability_events(nats_url, event_namespace, episode_id))
    assert announced[-1] == {"episodeId": str(episode_id), "playable": True, "state": "ready"}

    # A second transcode writes a folder of its own and becomes the one served.
    second = version_prefix(episode_id)
    job = uuid.uuid4()
    await episodes.publish(
        TranscodeStartedV1(episode_id=episode_id, job_id=job, attempt=1, hls_prefix=second)
    )
    upload_ladder(s3c, bucket, episodes.ladder, second)
    await episodes.publish(
        TranscodeCompletedV1(
            episode_id=episode_id,
            job_id=job,
            hls_master_key=second + "master.m3u8",
            renditions=["180p", "90p"],
        )
    )

    async def switched() -> str | None:
        url = (await hls_url(client, auth, episode_id)).json()["url"]
        return url if second.removeprefix("hls/") in url else None

    new_url = await wait_until(switched)
    # A failed third attempt leaves a folder nothing will serve.
    third = version_prefix(episode_id)
    upload_ladder(s3c, bucket, episodes.ladder, third)
    await episodes.publish(
        TranscodeStartedV1(episode_id=episode_id, job_id=job, attempt=2, hls_prefix=third)
    )
    await episodes.publish(
        TranscodeFailedV1(episode_id=episode_id, job_id=job, reason="x", hls_prefix=third)
    )
    await episodes.wait_state(episode_id, "failed")
    async with httpx.AsyncClient() as plain:
        # A player still on the old version finishes it: nothing changed under it.
        assert (await plain.get(old_url)).status_code == 200
        assert (await plain.get(new_url)).status_code == 200

        ctx = media_app.state.runtime.context
        database = media_app.state.runtime.database
        # Before the grace period ends nothing goes...
        assert await sweep_folders(database, ctx.storage) == 0
        # ... after it, every folder that is not served, and only those.
        later = datetime.now(UTC) + timedelta(seconds=ctx.settings.hls_retire_grace + 1)
        assert await sweep_folders(database, ctx.storage, now=later) == 2
        for gone in (first, third):
            assert s3c.list_objects_v2(Bucket=bucket, Prefix=gone).get("KeyCount") == 0
        assert s3c.list_objects_v2(Bucket=bucket, Prefix=second)["KeyCount"] > 0
        assert (await plain.get(old_url)).status_code == 404
        assert (await plain.get(new_url)).status_code == 200


async def test_a_ready_episode_whose_hls_is_gone_is_announced_not_playable(
    client, auth, episodes, s3c, bucket, media_app, nats_url, event_namespace
):
    episode_id, prefix = await episodes.ready()
    other_id, _ = await episodes.ready()
    ctx = media_app.state.runtime.context
    database = media_app.state.runtime.database
    await check_presence(database, ctx.storage)
    assert await asset_state(media_app, episode_id) == "ready"

    # The store loses the episode's objects behind media's back (a wiped local
    # stand-in, a restore from an older backup).
    for obj in s3c.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        s3c.delete_object(Bucket=bucket, Key=obj["Key"])
    report = await check_presence(database, ctx.storage)
    assert report.missing >= 1
    assert await asset_state(media_app, episode_id) == "missing"
    assert await asset_state(media_app, other_id) == "ready"

    async def announced() -> dict | None:
        found = await playability_events(nats_url, event_namespace, episode_id)
        return found[-1] if found and found[-1]["state"] == "missing" else None

    assert await wait_until(announced) == {
        "episodeId": str(episode_id),
        "playable": False,
        "state": "missing",
    }
    r = await hls_url(client, auth, episode_id)
    assert r.status_code == 409
    assert r.json()["type"] == PROBLEM + "episode-media-missing"
    # Announced once, not once per check.
    await check_presence(database, ctx.storage)
    await asyncio.sleep(1.0)
    states = [e["state"] for e in await playability_events(nats_url, event_namespace, episode_id)]
    assert states.count("missing") == 1

    # The objects come back (a store restored late): playable again.
    upload_ladder(s3c, bucket, episodes.ladder, prefix)
    report = await check_presence(database, ctx.storage)
    assert report.restored >= 1
    assert await asset_state(media_app, episode_id) == "ready"
    assert (await hls_url(client, auth, episode_id)).status_code == 200

    async def back() -> bool:
        found = await playability_events(nats_url, event_namespace, episode_id)
        return found[-1] == {"episodeId": str(episode_id), "playable": True, "state": "ready"}

    await wait_until(back)


async def test_the_presence_check_changes_nothing_when_storage_does_not_answer(
    media_app, episodes, media_settings
):
    episode_id, _ = await episodes.ready()
    away = MediaStorage(
        MediaSettings(**{**media_settings, "s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    )
    report = await check_presence(media_app.state.runtime.database, away)
    assert report.checked == 0
    assert await asset_state(media_app, episode_id) == "ready"


async def test_a_folder_another_episode_wrote_is_never_served_or_deleted(
    client, auth, episodes, s3c, bucket
):
    victim, victim_prefix = await episodes.ready()
    intruder = await episodes.known()
    # An event naming the other episode's folder: refused, nothing registered.
    await episodes.publish(
        TranscodeCompletedV1(
            episode_id=intruder, job_id=uuid.uuid4(), hls_master_key=victim_prefix + "master.m3u8"
        )
    )
    await episodes.publish(
        TranscodeFailedV1(
            episode_id=intruder, job_id=uuid.uuid4(), reason="x", hls_prefix=victim_prefix
        )
    )
    await episodes.wait_state(intruder, "failed")
    await episodes.publish(EpisodeDeletedV1(episode_id=intruder, title_id=uuid.uuid4()))
    await episodes.wait_state(intruder, "deleted")
    assert s3c.list_objects_v2(Bucket=bucket, Prefix=victim_prefix)["KeyCount"] > 0
    assert (await hls_url(client, auth, victim)).status_code == 200


# --- the edge: client addresses, no host reflection, fail closed ------------------------------


async def public_episode(episodes) -> uuid.UUID:
    episode_id, _ = await episodes.ready()
    await episodes.publish(
        EpisodeVisibilityChangedV1(episode_id=episode_id, title_id=uuid.uuid4(), public=True)
    )
    await wait_until(lambda: asset_public(episodes.app, episode_id))
    return episode_id


def edge_app(media_settings, **over):
    """A replica with its own counters and a limit that a loaded machine cannot outrun."""
    settings = {
        **media_settings,
        "run_consumers": False,
        "run_outbox_relay": False,
        "rate_limit_prefix": f"test:{uuid.uuid4().hex[:10]}:rl",
        "playback_rate_limit": 3,
        "playback_rate_window_seconds": 60,
        **over,
    }
    return create_app(MediaSettings(**settings))


async def test_rotating_x_forwarded_for_from_an_untrusted_peer_still_hits_the_limit(
    media_settings, episodes
):
    episode_id = await public_episode(episodes)
    async with serve_app(edge_app(media_settings)) as c:
        statuses = [
            (
                await c.get(
                    f"/api/episodes/{episode_id}/hls",
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
            ).status_code
            for i in range(5)
        ]
    assert statuses == [200, 200, 200, 429, 429]


async def test_behind_a_trusted_proxy_the_forwarded_client_is_limited(media_settings, episodes):
    episode_id = await public_episode(episodes)
    # The test client's peer address is 127.0.0.1: here, the gateway.
    async with serve_app(edge_app(media_settings, trusted_proxies="127.0.0.1")) as c:

        async def get(client: str) -> httpx.Response:
            return await c.get(
                f"/api/episodes/{episode_id}/hls", headers={"X-Forwarded-For": client}
            )

        assert [(await get("203.0.113.1")).status_code for _ in range(4)] == [200, 200, 200, 429]
        r = await get("203.0.113.1")
        assert r.json()["type"] == PROBLEM + "rate-limited"
        assert int(r.headers["retry-after"]) >= 1
        assert (await get("203.0.113.2")).status_code == 200


async def test_playback_urls_name_the_configured_base_never_the_host(
    media_settings, episodes, auth
):
    episode_id, _ = await episodes.ready()
    app = edge_app(media_settings, public_base_url="https://api.studio.test/media")
    async with serve_app(app) as c:
        r = await c.get(
            f"/api/episodes/{episode_id}/hls",
            headers={**auth.viewer, "Host": "evil.example", "X-Forwarded-Host": "evil.example"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["url"].startswith("https://api.studio.test/media/hls/")
    assert "evil.example" not in r.text
    assert r.headers["cache-control"] == "no-store"


async def test_development_without_a_base_gives_gateway_relative_urls(
    media_settings, episodes, auth
):
    episode_id, _ = await episodes.ready()
    app = edge_app(media_settings, environment="development", public_base_url=None)
    async with serve_app(app) as c:
        r = await c.get(
            f"/api/episodes/{episode_id}/hls", headers={**auth.viewer, "Host": "evil.example"}
        )
    assert r.status_code == 200, r.text
    assert r.json()["url"].startswith("/hls/")


@pytest.mark.parametrize(
    ("missing", "variable"),
    [
        ({"playback_signing_key": ""}, "MEDIA_PLAYBACK_SIGNING_KEY"),
        ({"public_base_url": None}, "MEDIA_PUBLIC_BASE_URL"),
        ({"jwt_audience": None}, "STUDIO_JWT_AUDIENCE"),
    ],
)
@pytest.mark.parametrize("environment", ["production", "test"])
async def test_outside_development_a_missing_setting_stops_the_service(
    media_settings, environment, missing, variable
):
    app = edge_app(media_settings, environment=environment, **missing)
    with pytest.raises(SettingsError, match=variable):
        async with serve_app(app):
            pass


def test_only_development_signs_with_a_key_of_its_own(media_settings):
    settings = {**media_settings, "playback_signing_key": ""}
    dev = MediaSettings(**{**settings, "environment": "development"})
    assert dev.signing_key_generated
    assert dev.startup_problems() == []
    production = MediaSettings(**{**settings, "environment": "production"})
    assert not production.signing_key_generated
    assert production.playback_signing_key == ""


EDGE = {"X-Studio-Hls-Edge": "storage"}


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "routed"])
async def test_the_edge_answer_names_the_object_without_the_database(
    media_settings, signing_key, bucket, fast_path
):
    """ADR 8: behind the gateway media checks the token only and answers where the
    object is; an episode it has never heard of is no database question. The
    same answers before routing (studio_media.api.edge) as through the routes."""
    episode_id, version = uuid.uuid4(), uuid.uuid4().hex
    good = tokens.sign(signing_key, episode_id, int(time.time()) + 300)
    key = f"hls/{episode_id}/{version}/180p/seg_000.ts"
    app = edge_app(media_settings, hls_edge_fast_path=fast_path)
    async with serve_app(app) as plain:
        base = str(plain.base_url).rstrip("/")
        get = await plain.get(
            token_url(base, good, episode_id, f"{version}/180p/seg_000.ts"), headers=EDGE
        )
        head = await plain.head(
            token_url(base, good, episode_id, f"{version}/180p/seg_000.ts"), headers=EDGE
        )
        # Without the header media still looks the folder up: unknown here.
        plain_get = await plain.get(token_url(base, good, episode_id, f"{version}/180p/seg_000.ts"))
        forged = await plain.get(
            token_url(
                base, f"{int(time.time()) + 300}.{'A' * 43}", episode_id, f"{version}/master.m3u8"
            ),
            headers=EDGE,
        )
        bad_path = await plain.get(
            token_url(base, good, episode_id, f"{version}/x.exe"), headers=EDGE
        )
    for reply in (get, head):
        assert reply.status_code == 200
        assert reply.headers["x-accel-redirect"] == "/__studio/hls-storage"
        assert "cache-control" not in reply.headers
        assert reply.content == b""
    for reply in (get, head):
        url = reply.headers["x-studio-storage-url"]
        assert f"/{bucket}/{key}?" in url
        assert "X-Amz-Expires=60" in url
    assert plain_get.status_code == 404
    assert forged.status_code == 403
    assert forged.json()["type"] == PROBLEM + "playback-token-invalid"
    assert "x-accel-redirect" not in forged.headers
    assert bad_path.status_code == 400


# --- styled subtitles: ASS originals and their fonts --------------------------

# Read once at import: a real TrueType font as the transcoder would store it.
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").read_bytes()
ASS = "[Script Info]\nScriptType: v4.00+\n\n[Events]\nFormat: Start, End, Text\n"


def styled_manifest(font_path: str, size: int) -> dict:
    return {
        "version": 1,
        "tracks": [
            {
                "name": "ja",
                "language": "ja",
                "label": "Japanese",
                "default": True,
                "forced": False,
                "webvtt": "subs/ja.vtt",
                "playlist": "subs/ja.m3u8",
                "ass": "subs/ja.ass",
                "fonts": ["DejaVu Sans", "Gone Gothic"],
                "fontFiles": [font_path],
                "missingFonts": ["Gone Gothic"],
            },
            # Paths media would never serve are left out of the answer.
            {"name": "x", "language": "en", "label": "x", "webvtt": "../../other/en.vtt"},
            {
                "name": "en",
                "language": "en",
                "label": "English",
                "webvtt": "subs/en.vtt",
                "ass": "subs/../../en.ass",
            },
        ],
        "fonts": [
            {
                "path": font_path,
                "families": ["DejaVu Sans"],
                "contentType": "font/ttf",
                "size": size,
            },
            {"path": "master.m3u8", "families": ["not a font"]},
        ],
    }


async def test_ass_tracks_and_fonts_come_with_the_playback_url_and_play_through_it(
    client, auth, episodes, s3c, bucket
):
    plain_id, _ = await episodes.ready()
    episode_id, prefix = await episodes.ready()
    font = FONT
    font_path = f"fonts/{'ab' * 32}.ttf"
    objects = {
        "subs/ja.vtt": (b"WEBVTT\n\n00:00.000 --> 00:01.000\nkanban\n", "text/vtt"),
        "subs/ja.ass": (ASS.encode(), "text/x-ssa; charset=utf-8"),
        font_path: (font, "font/ttf"),
        "subs/subtitles.json": (
            json.dumps(styled_manifest(font_path, len(font))).encode(),
            "application/json",
        ),
    }
    for path, (body, ctype) in objects.items():
        s3c.put_object(Bucket=bucket, Key=prefix + path, Body=body, ContentType=ctype)

    # An episode transcoded without the metadata (or before it existed): no extras.
    out = (await hls_url(client, auth, plain_id)).json()
    assert (out["subtitles"], out["fonts"]) == ([], [])

    out = (await hls_url(client, auth, episode_id)).json()
    folder = out["url"].removesuffix("master.m3u8")
    ja, en = out["subtitles"]
    assert ja == {
        "name": "ja",
        "language": "ja",
        "label": "Japanese",
        "default": True,
        "forced": False,
        "webvtt": folder + "subs/ja.vtt",
        "ass": folder + "subs/ja.ass",
        "fonts": [folder + font_path],
        "missingFonts": ["Gone Gothic"],
    }
    assert (en["webvtt"], en["ass"], en["fonts"]) == (folder + "subs/en.vtt", None, [])
    assert out["fonts"] == [
        {
            "url": folder + font_path,
            "families": ["DejaVu Sans"],
            "contentType": "font/ttf",
            "size": len(font),
        }
    ]
    async with httpx.AsyncClient() as plain:
        r = await plain.get(ja["ass"])
        assert r.status_code == 200
        assert r.text == ASS
        assert r.headers["content-type"].split(";")[0] == "text/x-ssa"
        assert "max-age" in r.headers["cache-control"]
        r = await plain.get(out["fonts"][0]["url"])
        assert r.status_code == 200
        assert r.content == font
        assert r.headers["content-type"] == "font/ttf"
        assert r.headers["cache-control"].startswith("private, max-age=")
        r = await plain.get(out["fonts"][0]["url"], headers={"Range": "bytes=0-3"})
        assert r.status_code == 206
        assert r.content == font[:4]
        # Same token, another file type that is no part of the folder's presentation.
        r = await plain.get(folder + "fonts/x.exe")
        assert r.status_code == 400
        # The token stays the key: a font of the episode without it is refused.
        r = await plain.get(folder.replace("/hls/", "/hls/1") + font_path)
        assert r.status_code == 403


async def test_cdn_mode_signs_the_subtitle_and_font_urls_like_the_master(
    media_settings, episodes, auth, cdn_key, s3c, bucket
):
    episode_id, prefix = await episodes.ready()
    font_path = f"fonts/{'cd' * 32}.ttf"
    s3c.put_object(
        Bucket=bucket,
        Key=prefix + "subs/subtitles.json",
        Body=json.dumps(styled_manifest(font_path, 10)).encode(),
    )
    settings = cdn_settings(media_settings, cdn_key)
    async with serve_app(create_app(settings)) as c:
        out = (await c.get(f"/api/episodes/{episode_id}/hls", headers=auth.viewer)).json()
    query = urlsplit(out["url"]).query
    assert out["fonts"][0]["url"] == f"https://cdn.studio.test/{prefix}{font_path}?{query}"
    assert out["subtitles"][0]["ass"] == f"https://cdn.studio.test/{prefix}subs/ja.ass?{query}"
