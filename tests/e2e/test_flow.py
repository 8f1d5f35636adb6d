"""The whole flow through the gateway: upload → transcode → play in Chromium → resume.

Over HTTP only; no service is imported. The tests run in file order and share
the module's title: a source that is not a video is sent first, so the good
one is transcoded by a worker that has just seen a job fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_stack import Stack

pytestmark = pytest.mark.e2e

PLAYER_PAGE = """<!doctype html>
<html><body>
<video id="video" muted playsinline autoplay style="width:640px;height:360px"></video>
</body></html>"""

# Starts hls.js on the page and records what happens on window.__hls.
START_PLAYER = """
(url) => {
  const video = document.getElementById('video');
  const state = { errors: [], levels: [], parsed: false };
  window.__hls = state;
  if (!Hls.isSupported()) { state.errors.push({ details: 'hls.js is not supported' }); return; }
  const hls = new Hls({ enableWorker: true });
  hls.on(Hls.Events.ERROR, (_, data) => state.errors.push({
    type: data.type, details: data.details, fatal: data.fatal,
    code: data.response ? data.response.code : null,
  }));
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    state.parsed = true;
    state.levels = hls.levels.map(l => ({ height: l.height, width: l.width, bitrate: l.bitrate }));
    video.play().catch(e => state.errors.push({ details: 'play() ' + e }));
  });
  hls.loadSource(url);
  hls.attachMedia(video);
}
"""


@dataclass
class Flow:
    """What the tests of this module build up, in order."""

    title: dict[str, Any] = field(default_factory=dict)
    season: dict[str, Any] = field(default_factory=dict)
    episode: dict[str, Any] = field(default_factory=dict)
    states: list[tuple[str, float | None, bool]] = field(default_factory=list)
    hls_url: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def flow() -> Flow:
    return Flow()


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def admin(stack: Stack) -> dict[str, str]:
    return stack.headers("admin", "admin@e2e.studio.test")


@pytest.fixture(scope="module")
def viewer(stack: Stack) -> dict[str, str]:
    return stack.headers("viewer", f"viewer-{uuid.uuid4().hex[:6]}@e2e.studio.test")


@pytest.fixture(scope="module")
def source(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of 1080p24 with stereo AAC, at a bitrate that makes it span two 5 MiB parts."""
    path = tmp_path_factory.mktemp("source") / "source.mp4"
    return make_clip(
        ffmpeg, path, "1920x1080", 3, "-b:v", "24M", "-maxrate", "24M", "-bufsize", "24M"
    )


def make_clip(ffmpeg: str, path: Path, size: str, seconds: int, *video: str) -> Path:
    """``seconds`` of ffmpeg's test pattern at ``size``, 24 fps H.264 (with the
    ``video`` options) and a stereo AAC tone, written to ``path``."""
    subprocess.run(
        [
            ffmpeg,
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
            *("-map", "0:v", "-map", "1:a"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *video),
            *("-c:a", "aac", "-ac", "2", "-b:a", "128k"),
            *("-movflags", "+faststart"),
            str(path),
        ],
        check=True,
        timeout=180,
    )
    return path


def ok(response: httpx.Response, *expected: int) -> Any:
    assert response.status_code in (expected or (200,)), (
        f"{response.request.method} {response.request.url.path}: "
        f"{response.status_code} {response.text[:500]}"
    )
    return response.json() if response.content else None


def ok_text(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.text


def multipart_upload(
    http: httpx.Client, headers: dict[str, str], filename: str, body: bytes, content_type: str
) -> tuple[dict[str, Any], httpx.Response]:
    """Create (media assigns the key) → part URLs → PUT the parts (to S3, not the gateway) → complete."""
    upload = ok(
        http.post(
            "/api/admin/uploads",
            json={
                "kind": "source",
                "filename": filename,
                "contentType": content_type,
                "size": len(body),
            },
            headers=headers,
        ),
        201,
    )
    numbers = list(range(1, upload["partCount"] + 1))
    urls = ok(
        http.post(
            f"/api/admin/uploads/{upload['uploadId']}/parts",
            json={"partNumbers": numbers},
            headers=headers,
        )
    )
    size = upload["partSize"]
    completed = []
    with httpx.Client(timeout=60) as s3:
        for part in urls["parts"]:
            n = part["partNumber"]
            chunk = body[(n - 1) * size : n * size]
            put = s3.put(part["url"], content=chunk, headers=part["headers"])
            assert put.status_code == 200, (n, put.status_code, put.text[:300])
            completed.append({"partNumber": n, "etag": put.headers["ETag"].strip('"')})
    done = http.post(
        f"/api/admin/uploads/{upload['uploadId']}/complete",
        json={"parts": completed},
        headers=headers,
    )
    return upload, done


def watch_episode(
    http: httpx.Client, headers: dict[str, str], episode_id: str, until: set[str], within: float
) -> tuple[dict[str, Any], list[tuple[str, float | None, bool]]]:
    """Polls the episode; returns the last state and every distinct one seen."""
    seen: list[tuple[str, float | None, bool]] = []
    deadline = time.monotonic() + within
    while True:
        episode = ok(http.get(f"/api/admin/episodes/{episode_id}", headers=headers))
        state = (episode["transcodeState"], episode["transcodeProgress"], episode["playable"])
        if not seen or seen[-1] != state:
            seen.append(state)
        # "ready" counts once media serves it too (playable is media's word).
        state_reached = episode["transcodeState"] in until
        if state_reached and (episode["transcodeState"] != "ready" or episode["playable"]):
            return episode, seen
        assert time.monotonic() < deadline, f"still {state} after {within} s: {seen}"
        time.sleep(0.1)


def play(page: Any, stack: Stack, hls_js: Path, url: str) -> None:
    # Same origin as the HLS URLs: the page is the gateway's, its content replaced.
    page.goto(f"{stack.gateway_url}/api/titles")
    page.set_content(PLAYER_PAGE)
    page.add_script_tag(path=str(hls_js))
    page.evaluate(START_PLAYER, url)


def play_past(page: Any, stack: Stack, hls_js: Path, url: str, seconds: float) -> dict[str, Any]:
    """Plays ``url`` until the video is past ``seconds`` or hls.js has a fatal
    error; what the page recorded on ``window.__hls``."""
    play(page, stack, hls_js, url)
    page.wait_for_function(
        f"() => document.getElementById('video').currentTime > {seconds}"
        " || (window.__hls && window.__hls.errors.some(e => e.fatal))",
        timeout=60_000,
    )
    state: dict[str, Any] = page.evaluate("() => window.__hls")
    return state


def new_episode(
    http: httpx.Client, admin: dict[str, str], source: Path, *, slug: str, name: str
) -> dict[str, Any]:
    """Episode 1 of season 1 of a new title ``slug``, made of ``source`` uploaded
    in parts, as an editor makes one."""
    title = ok(
        http.post(
            "/api/admin/titles",
            json={"slug": slug, "name": f"E2E {slug}", "type": "series", "genres": ["test"]},
            headers=admin,
        ),
        201,
    )
    season = ok(
        http.post(
            "/api/admin/seasons",
            json={"titleId": title["id"], "number": 1, "name": "Season 1"},
            headers=admin,
        ),
        201,
    )
    _, done = multipart_upload(http, admin, source.name, source.read_bytes(), "video/mp4")
    key = ok(done)["key"]
    return create_episode(http, admin, season["id"], key, number=1, name=name)


def create_episode(
    http: httpx.Client,
    admin: dict[str, str],
    season_id: str,
    key: str,
    *,
    number: int,
    name: str,
) -> dict[str, Any]:
    """An episode of ``season_id`` made of the verified source ``key``."""
    episode: dict[str, Any] = ok(
        http.post(
            "/api/admin/episodes",
            json={"seasonId": season_id, "number": number, "name": name, "sourceKey": key},
            headers=admin,
        ),
        201,
    )
    return episode


def presign_and_put(http: httpx.Client, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A source upload presigned for the caller of ``headers`` and ``body`` put to it."""
    presigned = ok(
        http.post(
            "/api/admin/presign",
            json={
                "kind": "source",
                "filename": "ep.mp4",
                "contentType": "video/mp4",
                "size": len(body),
            },
            headers=headers,
        )
    )
    with httpx.Client(timeout=30) as s3:
        assert (
            s3.put(presigned["url"], content=body, headers=presigned["headers"]).status_code == 200
        )
    return presigned


# --------------------------------------------------------------------------- tests


def test_a_title_and_a_season(http: httpx.Client, admin: dict[str, str], flow: Flow) -> None:
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    flow.title = ok(
        http.post(
            "/api/admin/titles",
            json={"slug": slug, "name": f"E2E {slug}", "type": "series", "genres": ["test"]},
            headers=admin,
        ),
        201,
    )
    flow.season = ok(
        http.post(
            "/api/admin/seasons",
            json={"titleId": flow.title["id"], "number": 1, "name": "Season 1"},
            headers=admin,
        ),
        201,
    )
    public = ok(http.get(f"/api/titles/{slug}"))
    assert [s["number"] for s in public["seasons"]] == [1]


MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def test_an_editor_can_neither_overwrite_nor_destroy_another_editors_upload(
    http: httpx.Client, stack: Stack
) -> None:
    """Issue 12, repro 2: B presigns A's key or verifies it with another size."""
    a = stack.headers("editor", "editor-a@e2e.studio.test")
    b = stack.headers("editor", "editor-b@e2e.studio.test")
    body = MP4_HEAD + b"\x00" * 4000
    mine = presign_and_put(http, a, body)
    ok(http.post("/api/admin/uploads/verify", json={"uploadId": mine["uploadId"]}, headers=a))

    # B cannot name A's key, and the same file name is another object.
    r = http.post(
        "/api/admin/presign",
        json={"key": mine["key"], "contentType": "video/mp4", "size": 1},
        headers=b,
    )
    assert r.status_code == 422, r.text
    theirs = ok(
        http.post(
            "/api/admin/presign",
            json={"kind": "source", "filename": "ep.mp4", "contentType": "video/mp4", "size": 1},
            headers=b,
        )
    )
    assert theirs["key"] != mine["key"]
    # B's verify of A's upload is refused and deletes nothing.
    r = http.post("/api/admin/uploads/verify", json={"uploadId": mine["uploadId"]}, headers=b)
    assert r.status_code == 403, r.text
    # A's object is still there and still verified; B cannot use it as a source.
    again = ok(
        http.post("/api/admin/uploads/verify", json={"uploadId": mine["uploadId"]}, headers=a)
    )
    assert again["size"] == len(body)


def test_only_a_verified_source_of_ones_own_makes_an_episode(
    http: httpx.Client, stack: Stack, flow: Flow
) -> None:
    """Issue 12, repro 3: a source never uploaded or verified is refused at creation."""
    assert flow.season, "needs the season"
    a = stack.headers("editor", "editor-a@e2e.studio.test")
    b = stack.headers("editor", "editor-b@e2e.studio.test")

    def create(key: str, headers: dict[str, str]) -> httpx.Response:
        return http.post(
            "/api/admin/episodes",
            json={"seasonId": flow.season["id"], "number": 50, "name": "x", "sourceKey": key},
            headers=headers,
        )

    for key, reason in [
        ("uploads/never-uploaded/x.mp4", "source-key-invalid"),
        ("uploads/x.exe", "source-key-invalid"),
        (f"uploads/{uuid.uuid4()}/x.mp4", "source-not-verified"),
    ]:
        r = create(key, a)
        assert r.status_code == 422, (key, r.text)
        assert r.json()["type"] == f"urn:studio:problem:{reason}", (key, r.text)

    # A presigned but never verified upload is no source either; once verified it is
    # A's alone.
    body = MP4_HEAD + b"\x00" * 4000
    mine = presign_and_put(http, a, body)
    r = create(mine["key"], a)
    assert r.json()["type"] == "urn:studio:problem:source-not-verified", r.text
    ok(http.post("/api/admin/uploads/verify", json={"uploadId": mine["uploadId"]}, headers=a))
    r = create(mine["key"], b)
    assert r.json()["type"] == "urn:studio:problem:source-not-owned", r.text
    # Right after verification: catalog waits for media's word instead of refusing.
    episode = ok(create(mine["key"], a), 201)
    ok(http.delete(f"/api/admin/episodes/{episode['id']}", headers=a), 204)


def test_an_upload_that_is_not_a_video_fails_with_a_readable_reason(
    http: httpx.Client, admin: dict[str, str], flow: Flow
) -> None:
    assert flow.season, "needs the season"
    # Plain text declared as MP4: media checks the first bytes and refuses it.
    _, done = multipart_upload(
        http, admin, "notes.mp4", b"these are not moving pictures\n" * 400, "video/mp4"
    )
    assert done.status_code == 422, done.text
    problem = done.json()
    assert problem["type"] == "urn:studio:problem:upload-content-invalid"
    assert problem["detail"]

    # An MP4 header and then noise passes that check; the transcoder's probe has the last word.
    noise = (
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + hashlib.sha256(b"x").digest() * 4000
    )
    _, done = multipart_upload(http, admin, "noise.mp4", noise, "video/mp4")
    key = ok(done)["key"]
    episode = create_episode(http, admin, flow.season["id"], key, number=99, name="Noise")
    failed, seen = watch_episode(http, admin, episode["id"], {"failed", "ready"}, within=90)
    assert failed["transcodeState"] == "failed", seen
    assert failed["playable"] is False
    reason = failed["transcodeLog"].splitlines()[0]
    assert "not a video" in reason, reason
    jobs = ok(http.get("/api/admin/jobs", params={"status": "failed"}, headers=admin))
    [job] = [j for j in jobs["items"] if j["episodeId"] == episode["id"]]
    job = ok(http.get(f"/api/admin/jobs/{job['id']}", headers=admin))
    assert job["errorReason"] == reason
    # Viewers get no playback URL for it.
    r = http.get(f"/api/episodes/{episode['id']}/hls", headers=admin)
    assert r.status_code in (404, 409), r.text


def test_a_real_source_goes_queued_processing_ready(
    http: httpx.Client, admin: dict[str, str], source: Path, flow: Flow
) -> None:
    assert flow.season, "needs the season"
    body = source.read_bytes()
    upload, done = multipart_upload(http, admin, "source.mp4", body, "video/mp4")
    verified = ok(done)
    key = verified["key"]
    assert key == f"uploads/{upload['uploadId']}/source.mp4"
    assert upload["partCount"] >= 2 or upload["partSize"] > 5 * 1024 * 1024, upload
    assert verified["size"] == len(body)
    assert verified["format"] in ("mp4", "mov", "mp4/mov"), verified
    checked = ok(
        http.post("/api/admin/uploads/verify", json={"uploadId": upload["uploadId"]}, headers=admin)
    )
    assert checked["size"] == len(body)

    started = time.monotonic()
    episode = create_episode(http, admin, flow.season["id"], key, number=1, name="Pilot")
    assert episode["transcodeState"] == "queued"
    flow.states.append(("queued", episode["transcodeProgress"], episode["playable"]))
    done_episode, seen = watch_episode(http, admin, episode["id"], {"ready", "failed"}, within=150)
    flow.timings["created_to_ready"] = time.monotonic() - started
    flow.states += seen
    assert done_episode["transcodeState"] == "ready", done_episode["transcodeLog"]
    states = [s for s, _, _ in flow.states]
    assert states.index("processing") < states.index("ready"), flow.states
    assert states[0] == "queued"
    progress = [p for s, p, _ in flow.states if s == "processing" and p]
    assert progress, f"no progress seen: {flow.states}"
    assert 0 < min(progress) < 100, flow.states
    assert progress == sorted(progress)
    assert done_episode["transcodeProgress"] == 100
    assert done_episode["playable"] is True
    assert set(done_episode["renditions"]) >= {"1080p", "720p", "480p"}
    assert 2.5 <= done_episode["durationSec"] <= 3.5
    flow.episode = done_episode


def test_a_viewer_plays_it_with_hls_js_in_chromium(
    http: httpx.Client, stack: Stack, viewer: dict[str, str], page: Any, hls_js: Path, flow: Flow
) -> None:
    assert flow.episode, "needs the ready episode"
    issued = ok(http.get(f"/api/episodes/{flow.episode['id']}/hls", headers=viewer))
    flow.hls_url = issued["url"]
    assert issued["url"].startswith(f"{stack.gateway_url}/hls/")
    started = time.monotonic()
    state = play_past(page, stack, hls_js, issued["url"], 2.0)
    current = page.evaluate("() => document.getElementById('video').currentTime")
    flow.timings["play_to_2s"] = time.monotonic() - started
    assert not [e for e in state["errors"] if e.get("fatal")], state["errors"]
    assert current > 2.0
    heights = sorted({level["height"] for level in state["levels"]})
    assert len(heights) > 1, state["levels"]
    assert heights[-1] == 1080


def _forge(url: str) -> str:
    """The same URL with the token's MAC changed (a character flipped)."""
    prefix, token, rest = url.split("/hls/", 1)[0], *url.split("/hls/", 1)[1].split("/", 1)
    expiry, mac = token.split(".", 1)
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    return f"{prefix}/hls/{expiry}.{flipped}/{rest}"


def _expired(url: str, key: str, episode_id: str) -> str:
    """A correctly signed token that expired a minute ago (ADR 4's format)."""
    expires = int(time.time()) - 60
    message = b"\n".join((b"studio-media/hls/v1", episode_id.encode(), str(expires).encode()))
    mac = hmac.new(key.encode(), message, hashlib.sha256).digest()
    token = f"{expires}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    prefix, rest = url.split("/hls/", 1)
    return f"{prefix}/hls/{token}/{rest.split('/', 1)[1]}"


def test_a_forged_or_expired_url_does_not_play(
    http: httpx.Client, stack: Stack, page: Any, hls_js: Path, flow: Flow
) -> None:
    assert flow.hls_url, "needs the playback URL"
    assert flow.episode, "needs the ready episode"
    bad = {"playback-token-invalid": _forge(flow.hls_url)}
    if stack.playback_signing_key:
        bad["playback-token-expired"] = _expired(
            flow.hls_url, stack.playback_signing_key, flow.episode["id"]
        )
    for slug, url in bad.items():
        r = http.get(url)
        assert r.status_code == 403, (slug, r.status_code, r.text[:200])
        assert r.json()["type"] == f"urn:studio:problem:{slug}"
        # A segment path with the bad token is refused as well.
        segment = url.replace("master.m3u8", "720p/index.m3u8")
        assert http.get(segment).status_code == 403

        play(page, stack, hls_js, url)
        page.wait_for_function(
            "() => window.__hls && window.__hls.errors.some(e => e.fatal)", timeout=30_000
        )
        state = page.evaluate("() => window.__hls")
        fatal = [e for e in state["errors"] if e.get("fatal")]
        assert fatal[0]["details"] == "manifestLoadError", fatal
        assert fatal[0]["code"] == 403, fatal
        assert state["parsed"] is False
        assert page.evaluate("() => document.getElementById('video').currentTime") == 0
    # The real URL still plays: nothing else was disturbed.
    assert http.get(flow.hls_url).status_code == 200


def test_resume_favorite_continue_watching_and_watchlist(
    http: httpx.Client, viewer: dict[str, str], flow: Flow
) -> None:
    assert flow.episode, "needs the ready episode"
    episode_id, title_id = flow.episode["id"], flow.title["id"]

    def until_ok(method: str, url: str, **kwargs: Any) -> Any:
        # Playback learns titles and episodes from catalog's events: eventually.
        deadline = time.monotonic() + 30
        while True:
            r = http.request(method, url, headers=viewer, **kwargs)
            if r.status_code != 404 or time.monotonic() > deadline:
                return ok(r)
            time.sleep(0.2)

    saved = until_ok("POST", "/api/playback", json={"episodeId": episode_id, "positionSec": 1.5})
    assert saved["applied"] is True
    assert saved["positionSec"] == 1.5
    assert ok(http.get(f"/api/playback/{episode_id}", headers=viewer))["positionSec"] == 1.5

    favorite = until_ok("POST", "/api/favorites", json={"titleId": title_id, "favorite": True})
    assert favorite == {"titleId": title_id, "favorite": True}

    resume = ok(http.get("/api/me/continue-watching", headers=viewer))
    [item] = [i for i in resume["items"] if i["titleId"] == title_id]
    assert item["episodeId"] == episode_id
    assert item["positionSec"] == 1.5
    assert item["upNext"] is False

    watchlist = ok(http.get("/api/users/me/watchlist", headers=viewer))
    assert [w["titleId"] for w in watchlist["items"]] == [title_id]
    assert watchlist["items"][0]["slug"] == flow.title["slug"]


def test_a_reused_slug_never_reaches_another_titles_files(
    http: httpx.Client, admin: dict[str, str], source: Path, flow: Flow
) -> None:
    """Storage keys are ids, not slugs (ADR 6): rename a title's slug, give the old
    slug to a new title with a private episode 1, and the old public episode
    still plays its own files; deleting it leaves the new one's intact."""
    assert flow.episode, "needs the ready episode"
    old_id, old_slug = flow.episode["id"], flow.title["slug"]
    anonymous = {"Accept": "application/json"}
    ok(http.patch(f"/api/admin/episodes/{old_id}", json={"public": True}, headers=admin))

    def anonymous_url() -> str:
        deadline = time.monotonic() + 30
        while True:  # media learns the visibility from catalog's event
            r = http.get(f"/api/episodes/{old_id}/hls", headers=anonymous)
            if r.status_code == 200 or time.monotonic() > deadline:
                return str(ok(r)["url"])
            time.sleep(0.2)

    before = anonymous_url()
    master_before = ok_text(http.get(before))
    ok(
        http.patch(
            f"/api/admin/titles/{flow.title['id']}",
            json={"slug": old_slug + "-renamed"},
            headers=admin,
        )
    )
    other = ok(
        http.post(
            "/api/admin/titles",
            json={"slug": old_slug, "name": "Another show", "type": "series", "genres": ["test"]},
            headers=admin,
        ),
        201,
    )
    season = ok(
        http.post("/api/admin/seasons", json={"titleId": other["id"], "number": 1}, headers=admin),
        201,
    )
    _, done = multipart_upload(http, admin, "other.mp4", source.read_bytes(), "video/mp4")
    created = ok(
        http.post(
            "/api/admin/episodes",
            json={
                "seasonId": season["id"],
                "number": 1,
                "name": "Private",
                "sourceKey": ok(done)["key"],
            },
            headers=admin,
        ),
        201,
    )
    new, _ = watch_episode(http, admin, created["id"], {"ready", "failed"}, within=150)
    assert new["transcodeState"] == "ready", new["transcodeLog"]
    assert new["public"] is False
    assert http.get(f"/api/episodes/{new['id']}/hls", headers=anonymous).status_code == 401

    # The old public episode is still served from its own folder, unchanged.
    after = anonymous_url()
    assert f"/{old_id}/" in after
    assert after.rsplit("/", 2)[-2] == before.rsplit("/", 2)[-2]  # same version folder
    assert ok_text(http.get(after)) == master_before
    new_url = str(ok(http.get(f"/api/episodes/{new['id']}/hls", headers=admin))["url"])
    assert f"/{new['id']}/" in new_url

    # Deleting the old episode removes only its own files.
    ok(http.delete(f"/api/admin/episodes/{old_id}", headers=admin), 204)
    deadline = time.monotonic() + 30
    while http.get(before).status_code != 404:
        assert time.monotonic() < deadline, "the deleted episode's files are still served"
        time.sleep(0.2)
    master = ok_text(http.get(new_url))
    variant = next(
        line for line in master.splitlines() if line.endswith(".m3u8") and not line.startswith("#")
    )
    playlist = ok_text(http.get(new_url.rsplit("/", 1)[0] + "/" + variant))
    segment = next(line for line in playlist.splitlines() if line and not line.startswith("#"))
    folder = (new_url.rsplit("/", 1)[0] + "/" + variant).rsplit("/", 1)[0]
    assert http.get(f"{folder}/{segment}").status_code == 200


def test_the_stack_is_still_healthy(
    http: httpx.Client, stack: Stack, admin: dict[str, str], flow: Flow
) -> None:
    """After a failed job and a finished one: every service ready, nothing parked."""
    if not stack.external:
        for name in ("catalog", "identity", "media", "transcoder", "playback"):
            r = httpx.get(f"{stack.service_url(name)}/readyz", timeout=5)
            assert r.status_code == 200, (name, r.text)
    titles = ok(http.get("/api/titles", params={"genre": "test", "pageSize": 100}))
    assert flow.title["id"] in [t["id"] for t in titles["items"]]
    print(json.dumps({"states": flow.states, "timings": flow.timings}))
