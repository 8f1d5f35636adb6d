"""A source above the chunking threshold through a stack of its own: split into
chunks on the work queue, its worker killed (``kill -9``) in the middle of a
chunk, and still ready once, playing across every chunk boundary in Chromium.

The stack runs with a threshold of 20 s and chunks of two 6 s segments; its
worker reads the source at twice realtime so that a chunk is in progress long
enough to be killed. Over HTTP and NATS, and /proc to find the worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from e2e_stack import Stack, cleanup, start_stack
from test_flow import make_clip, new_episode, ok, play, watch_episode

pytestmark = pytest.mark.e2e

SECONDS = 36
SEGMENT = 6.0
CHUNK_SEGMENTS = 2
OVERRIDES = {
    "TRANSCODER_CHUNKING": "true",
    "TRANSCODER_CHUNK_MIN_SECONDS": "20",
    "TRANSCODER_CHUNK_SEGMENTS": str(CHUNK_SEGMENTS),
    "TRANSCODER_SEGMENT_SECONDS": str(SEGMENT),
    "TRANSCODER_INPUT_READ_RATE": "2",
    # A killed worker's part goes to the restarted worker this soon.
    "TRANSCODER_WORKER_ACK_WAIT_SECONDS": "6",
    "TRANSCODER_LADDER": "720:2800,480:1400",
}


@pytest.fixture(scope="module")
def chunked_stack() -> Iterator[Stack]:
    if os.environ.get("STUDIO_E2E_GATEWAY_URL", "").strip():
        pytest.skip("needs a stack of its own (chunk settings, a worker to kill)")
    stack = start_stack(OVERRIDES)
    try:
        yield stack
    finally:
        stack.stop()
        cleanup(stack, keep_data=os.environ.get("STUDIO_E2E_KEEP_DATA") == "1")


@pytest.fixture(scope="module")
def long_source(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(ffmpeg, tmp_path_factory.mktemp("chunked") / "long.mp4", "1280x720", SECONDS)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def chunk_encoders(stack: Stack) -> list[tuple[int, int]]:
    """(ffmpeg, its worker) of every chunk being encoded in this stack's work dir."""
    work = str(stack.data_dir / "transcode") if stack.data_dir else None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if not argv or not argv[0].endswith("ffmpeg") or "-segment_start_number" not in argv:
            continue
        if work is None or not any(work in a for a in argv):
            continue
        if "-output_ts_offset" not in argv:
            continue
        start = argv[argv.index("-segment_start_number") + 1]
        if start == "0":
            continue  # chunk 0: the part everything waits for; kill a later one
        parent = _parent(int(entry.name))
        if parent is not None:
            found.append((int(entry.name), parent))
    return found


async def _events(stack: Stack, event_type: str, episode_id: str) -> list[dict[str, Any]]:
    root, stream = stack.env["STUDIO_EVENT_SUBJECT_ROOT"], stack.env["STUDIO_EVENT_STREAM"]
    nc = await nats.connect(stack.env.get("STUDIO_NATS_URL", "nats://127.0.0.1:4222"))
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            f"{root}.{event_type}", stream=stream, ordered_consumer=True, deliver_policy="all"
        )
        out = []
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                break
            data = json.loads(msg.data)
            if data.get("data", {}).get("episodeId") == episode_id:
                out.append(data)
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def events(stack: Stack, event_type: str, episode_id: str) -> list[dict[str, Any]]:
    """The episode's events of a type on the stack's stream (in a thread of its
    own: Playwright's sync API keeps this thread's event loop marked running)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _events(stack, event_type, episode_id)).result()


def test_a_long_source_survives_a_killed_worker_and_plays_across_every_chunk(
    chunked_stack: Stack, long_source: Path, page: Any, hls_js: Path
) -> None:
    stack = chunked_stack
    admin = stack.headers("admin", "admin@e2e.studio.test")
    viewer = stack.headers("viewer", f"viewer-{uuid.uuid4().hex[:6]}@e2e.studio.test")
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
        slug = f"e2e-chunked-{uuid.uuid4().hex[:8]}"
        episode = new_episode(http, admin, long_source, slug=slug, name="Long")

        # kill -9 of the worker while it encodes a chunk (not chunk 0).
        deadline = time.monotonic() + 180
        while not (encoders := chunk_encoders(stack)):
            assert time.monotonic() < deadline, "no chunk was encoded: " + stack.log_tail(60)
            time.sleep(0.1)
        _, worker = encoders[0]
        os.kill(worker, signal.SIGKILL)

        # The stack starts the worker again; the killed part comes back after ack_wait.
        ready, _ = watch_episode(http, admin, episode["id"], {"ready", "failed"}, within=300)
        assert ready["transcodeState"] == "ready", ready.get("transcodeLog")
        assert ready["playable"] is True
        assert SECONDS - 1 <= ready["durationSec"] <= SECONDS + 1
        assert set(ready["renditions"]) == {"720p", "480p"}

        issued = ok(http.get(f"/api/episodes/{episode['id']}/hls", headers=viewer))
        url = issued["url"]
        master = ok_text(http.get(url))
        # The first 6 s in three 2 s segments (short start), then 6 s ones.
        expected = [f"seg_{n:05d}.ts" for n in range(int(SECONDS / SEGMENT) + 2)]
        for rendition in ("720p", "480p"):
            assert f"{rendition}/index.m3u8" in master
            playlist = ok_text(http.get(url.replace("master.m3u8", f"{rendition}/index.m3u8")))
            assert re.findall(r"seg_\d+\.ts", playlist) == expected, playlist
            assert playlist.endswith("#EXT-X-ENDLIST\n")

    completed = events(stack, "transcoder.transcode.completed", episode["id"])
    assert len(completed) == 1, completed
    assert len(events(stack, "transcoder.transcode.playable", episode["id"])) == 1

    # Played through at 4x: every chunk boundary (4, 12 and 24 s) passed without a
    # stall, and once at the top rendition it never dropped to the lowest.
    play(page, stack, hls_js, url)
    page.evaluate(
        """() => {
          const video = document.getElementById('video');
          video.playbackRate = 4;
          window.__levels = [];
          video.addEventListener('timeupdate', () => {
            window.__levels.push([video.currentTime, video.videoHeight]);
          });
        }"""
    )
    page.wait_for_function(
        f"() => document.getElementById('video').currentTime > {SECONDS - 2}"
        " || document.getElementById('video').ended"
        " || (window.__hls && window.__hls.errors.some(e => e.fatal))",
        timeout=120_000,
    )
    state = page.evaluate("() => window.__hls")
    assert not [e for e in state["errors"] if e.get("fatal")], state["errors"]
    stalls = [e for e in state["errors"] if e.get("details") == "bufferStalledError"]
    assert not stalls, state["errors"]
    heights = [h for _, h in page.evaluate("() => window.__levels") if h]
    assert heights, "no frame shown"
    assert 720 in heights, heights
    assert 480 not in heights[heights.index(720) :], heights


def ok_text(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.text
