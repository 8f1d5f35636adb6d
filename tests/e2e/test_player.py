"""The demo player (web/player, served by the gateway at /) in headless Chromium:
browse, favorite, play, switch quality and audio language, resume after reload."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_cli import make_cli, make_source, new_title, upload_json

RESULTS = Path(__file__).resolve().parents[2] / "test-results"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def episode(stack, tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> dict[str, Any]:
    """A ready episode with two renditions, two audio languages and subtitles."""
    home = tmp_path_factory.mktemp("player-cli")
    cli = make_cli(stack, home)
    slug = new_title(cli, "player")
    source = make_source(ffmpeg, home / "episode.mp4", seconds=8)
    result = upload_json(cli, source, slug)
    return {"slug": slug, **result["episode"]}


@pytest.fixture
def shot(page, request: pytest.FixtureRequest) -> Iterator[None]:
    """On failure, a screenshot whose path is printed with the failure."""
    yield
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    if failed:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.player.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            sys.stderr.write(f"\nscreenshot: {path}\n")
        except Exception as exc:
            sys.stderr.write(f"\nno screenshot: {exc}\n")


def _dataset(page, name: str) -> str | None:
    return page.get_attribute("#player", f"data-{name}")


def _wait_dataset(page, name: str, value: str) -> None:
    page.wait_for_selector(f'#player[data-{name}="{value}"]', state="attached", timeout=WAIT_MS)


def _sign_in(page, gateway: str, email: str) -> None:
    page.goto(gateway + "/")
    page.wait_for_selector('body[data-ready="true"]', timeout=WAIT_MS)
    page.fill("#dev-email", email)
    page.select_option("#dev-role", "viewer")
    page.click("#dev-signin-button")
    page.wait_for_selector('body[data-signed-in="true"]', timeout=WAIT_MS)
    assert email in page.inner_text("#auth-user")


def test_page_is_served_with_security_headers(stack) -> None:
    reply = httpx.get(stack.gateway_url + "/", timeout=10)
    assert reply.status_code == 200
    assert '<script src="/player/app.js"' in reply.text
    csp = reply.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-frame-options"] == "DENY"
    assert httpx.get(stack.gateway_url + "/api/titles", timeout=10).status_code == 200


def test_browse_play_switch_and_resume(stack, page, shot, episode: dict[str, Any]) -> None:
    gateway = stack.gateway_url
    csp_violations: list[str] = []
    page.on(
        "console",
        lambda msg: (
            csp_violations.append(msg.text) if "Content Security Policy" in msg.text else None
        ),
    )
    email = f"viewer-{uuid.uuid4().hex[:8]}@e2e.studio.test"
    _sign_in(page, gateway, email)

    # Browse: search narrows the grid to the title; the genre filter lists its genre.
    all_titles = page.locator(".card").count()
    page.fill("#search", episode["slug"])
    page.wait_for_function(
        "slug => document.querySelector('.card') && document.querySelector('.card').dataset.slug === slug",
        arg=episode["slug"],
        timeout=WAIT_MS,
    )
    assert page.locator(".card").count() < max(all_titles, 2)
    page.select_option("#genre", "e2e")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.card')].every(c => c.textContent.includes('e2e'))",
        timeout=WAIT_MS,
    )
    page.locator(f'.card[data-slug="{episode["slug"]}"]').click()
    page.wait_for_selector('body[data-view="title"]', timeout=WAIT_MS)

    # Favorite toggle, checked against the playback API as the same user.
    favorite = page.locator("#favorite")
    page.wait_for_selector("#favorite:not([disabled])", timeout=WAIT_MS)
    assert favorite.get_attribute("aria-pressed") == "false"
    favorite.click()
    page.wait_for_selector('#favorite[aria-pressed="true"]', timeout=WAIT_MS)
    watchlist = httpx.get(
        f"{gateway}/api/users/me/watchlist", headers=stack.headers("viewer", email), timeout=10
    ).json()
    assert episode["titleId"] in [item["titleId"] for item in watchlist["items"]]

    # Play.
    page.click(f'.episode[data-episode-id="{episode["id"]}"] a.play')
    _wait_dataset(page, "playing", "true")
    page.wait_for_function(
        "() => document.getElementById('video').currentTime > 0.3", timeout=WAIT_MS
    )
    assert set(_dataset(page, "levels").split(",")) >= {"720", "480"}
    qualities = page.locator("#quality option").all_inner_texts()
    assert qualities[0] == "Auto"
    assert {"720p", "480p"} <= set(qualities)

    # Quality: 480p, then 720p, each actually loaded.
    for height in ("480", "720"):
        page.select_option("#quality", label=f"{height}p")
        _wait_dataset(page, "level", height)
        _wait_dataset(page, "playing-level", height)

    # Audio language: both are offered; switch from one to the other.
    assert page.is_visible("#audio-picker")
    assert set(_dataset(page, "audio-tracks").split(",")) == {"ja", "en"}
    current = _dataset(page, "audio") or "ja"
    other = "en" if current == "ja" else "ja"
    options = page.locator("#audio option")
    labels = options.all_inner_texts()
    langs = _dataset(page, "audio-tracks").split(",")
    page.select_option("#audio", label=labels[langs.index(other)])
    _wait_dataset(page, "audio", other)

    # Subtitles from the source are offered.
    assert page.is_visible("#subtitle-picker")
    assert "en" in _dataset(page, "subtitle-tracks").split(",")

    # Trickplay thumbnails on the seek bar.
    page.wait_for_selector('#player[data-trickplay]:not([data-trickplay="0"])', timeout=WAIT_MS)
    page.hover("#seek")
    page.wait_for_selector("#trickplay:not([hidden])", timeout=WAIT_MS)
    assert "sprite" in page.eval_on_selector("#trickplay-image", "e => e.style.backgroundImage")

    # Resume: pause at ~3 s (pausing saves the position), reload, start there.
    page.evaluate("() => { document.getElementById('video').currentTime = 3.2; }")
    page.wait_for_function(
        "() => document.getElementById('video').currentTime >= 3.2", timeout=WAIT_MS
    )
    page.evaluate("() => document.getElementById('video').pause()")
    page.wait_for_selector("#player[data-saved-position]", state="attached", timeout=WAIT_MS)
    saved = float(_dataset(page, "saved-position"))
    assert 3.0 <= saved <= 7.0
    position = httpx.get(
        f"{gateway}/api/playback/{episode['id']}",
        headers=stack.headers("viewer", email),
        timeout=10,
    ).json()
    assert abs(position["positionSec"] - saved) < 0.05

    page.reload()
    page.wait_for_selector('body[data-view="watch"]', timeout=WAIT_MS)
    page.wait_for_selector("#player[data-resume-at]", state="attached", timeout=WAIT_MS)
    assert abs(float(_dataset(page, "resume-at")) - saved) < 0.05
    _wait_dataset(page, "playing", "true")
    started = page.evaluate("() => document.getElementById('video').currentTime")
    assert started >= saved - 0.5, f"started at {started}, saved {saved}"
    assert "Resuming at" in page.inner_text("#watch-status")

    assert not csp_violations, csp_violations


def test_signed_out_viewers_watch_public_episodes_only(
    stack, page, shot, episode: dict[str, Any]
) -> None:
    gateway = stack.gateway_url
    watch = f"{gateway}/#/watch/{episode['id']}"
    page.goto(watch)
    page.wait_for_selector('body[data-signed-in="false"]', timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.getElementById('watch-status').textContent.includes('Sign in to watch')",
        timeout=WAIT_MS,
    )

    # An editor makes it public; media hears of it from catalog's event.
    r = httpx.patch(
        f"{gateway}/api/admin/episodes/{episode['id']}",
        json={"public": True},
        headers=stack.headers("editor"),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    hls = f"{gateway}/api/episodes/{episode['id']}/hls"
    for _ in range(100):
        if httpx.get(hls, timeout=10).status_code == 200:
            break
        page.wait_for_timeout(100)
    assert httpx.get(hls, timeout=10).status_code == 200

    page.goto(gateway + "/")
    page.goto(watch)
    _wait_dataset(page, "playing", "true")
    page.wait_for_function(
        "() => document.getElementById('video').currentTime > 0.3", timeout=WAIT_MS
    )
    assert _dataset(page, "saved-position") is None  # nothing to save it for


def test_skip_opening_lands_at_the_openings_end(stack, page, shot, episode: dict[str, Any]) -> None:
    gateway = stack.gateway_url
    r = httpx.put(
        f"{gateway}/api/admin/episodes/{episode['id']}/markers",
        json={"markers": [{"kind": "opening", "startSec": 0.5, "endSec": 5.0}]},
        headers=stack.headers("editor"),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["markers"][0]["source"] == "editor"
    _sign_in(page, gateway, f"viewer-{uuid.uuid4().hex[:8]}@e2e.studio.test")
    page.goto(f"{gateway}/#/watch/{episode['id']}")
    _wait_dataset(page, "playing", "true")
    page.wait_for_selector("#skip:not([hidden])", timeout=WAIT_MS)
    assert page.inner_text("#skip") == "Skip opening"
    page.evaluate("() => document.getElementById('video').pause()")
    # Keyboard: the button takes the focus and Enter presses it.
    page.focus("#skip")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => !document.getElementById('video').seeking"
        " && document.getElementById('video').currentTime > 4",
        timeout=WAIT_MS,
    )
    landed = page.evaluate("() => document.getElementById('video').currentTime")
    assert abs(landed - 5.0) <= 0.5, landed
    assert page.is_hidden("#skip")


@pytest.fixture(scope="module")
def next_episode(stack, episode: dict[str, Any], tmp_path_factory, ffmpeg: str) -> dict[str, Any]:
    """The second episode of ``episode``'s season: the first one's "Next episode"."""
    home = tmp_path_factory.mktemp("player-next")
    cli = make_cli(stack, home)
    source = make_source(ffmpeg, home / "episode2.mp4", seconds=8)
    result = upload_json(cli, source, episode["slug"], episode=2)
    return {"slug": episode["slug"], **result["episode"]}


def _set_markers(stack, episode_id: str, *markers: dict[str, Any]) -> None:
    r = httpx.put(
        f"{stack.gateway_url}/api/admin/episodes/{episode_id}/markers",
        json={"markers": list(markers)},
        headers=stack.headers("editor"),
        timeout=10,
    )
    assert r.status_code == 200, r.text


def _play_from(page, gateway: str, episode_id: str, at: float) -> None:
    page.goto(f"{gateway}/#/watch/{episode_id}")
    _wait_dataset(page, "playing", "true")
    page.evaluate(
        "at => { const v = document.getElementById('video'); v.pause(); v.currentTime = at; }", at
    )


def test_next_episode_at_the_ending_of_all_but_the_last(
    stack, page, shot, episode: dict[str, Any], next_episode: dict[str, Any]
) -> None:
    gateway = stack.gateway_url
    ending = {"kind": "ending", "startSec": 5.0, "endSec": 7.5}
    _set_markers(stack, episode["id"], {"kind": "opening", "startSec": 0.5, "endSec": 3.0}, ending)
    _set_markers(stack, next_episode["id"], ending)
    following = httpx.get(f"{gateway}/api/episodes/{episode['id']}", timeout=10).json()
    assert following["nextEpisodeId"] == next_episode["id"]
    assert (
        httpx.get(f"{gateway}/api/episodes/{next_episode['id']}", timeout=10).json()[
            "nextEpisodeId"
        ]
        is None
    )

    _sign_in(page, gateway, f"viewer-{uuid.uuid4().hex[:8]}@e2e.studio.test")
    # The opening of a non-final episode is still skipped, not left.
    _play_from(page, gateway, episode["id"], 1.0)
    page.wait_for_selector('#skip[data-action="opening"]:not([hidden])', timeout=WAIT_MS)
    # Its ending offers the next episode; the keyboard opens it.
    page.evaluate("() => { document.getElementById('video').currentTime = 5.6; }")
    page.wait_for_selector('#skip[data-action="next"]:not([hidden])', timeout=WAIT_MS)
    assert page.inner_text("#skip") == "Next episode"
    page.focus("#skip")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "id => location.hash === `#/watch/${id}`", arg=next_episode["id"], timeout=WAIT_MS
    )
    page.wait_for_function(
        "() => document.getElementById('watch-title').textContent.startsWith('2.')",
        timeout=WAIT_MS,
    )
    _wait_dataset(page, "playing", "true")

    # The last episode's ending is only skipped.
    page.evaluate(
        "() => { const v = document.getElementById('video'); v.pause(); v.currentTime = 5.6; }"
    )
    page.wait_for_selector('#skip[data-action="ending"]:not([hidden])', timeout=WAIT_MS)
    assert page.inner_text("#skip") == "Skip ending"
    page.focus("#skip")
    page.keyboard.press("Space")
    page.wait_for_function(
        "() => !document.getElementById('video').seeking"
        " && document.getElementById('video').currentTime > 7",
        timeout=WAIT_MS,
    )
    landed = page.evaluate("() => document.getElementById('video').currentTime")
    assert abs(landed - 7.5) <= 0.5, landed
    assert page.evaluate("() => location.hash") == f"#/watch/{next_episode['id']}"
