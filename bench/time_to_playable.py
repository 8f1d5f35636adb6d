"""Time to playable: `POST /api/admin/episodes` → hls.js starts playing, 60 s and 10 min sources.

    uv run python bench/time_to_playable.py [--lengths 60,600]

The whole stack as `make up` runs it (a private one on shifted ports, started
by tests/e2e/e2e_stack.py with the services' default transcoder settings), the
sources made by ffmpeg (1080p24 testsrc2 + stereo AAC) and uploaded with the
multipart flow before the clock starts. Then, per source:

1. ``POST /api/admin/episodes`` (the clock starts);
2. ``GET /api/episodes/{id}/hls`` is polled every 0.1 s, as a player would,
   until it gives the URL (404 until media has heard of the episode, then 409
   until it can serve it);
3. headless Chromium, whose page has hls.js loaded before the clock started,
   plays it; the clock stops at the video element's first ``playing`` event.

Each job is left to finish before the next source starts, so no job waits in
the queue behind another. Targets: ≤ 15 s for both lengths (issue 8); ≤ 4 s for
the 10-minute source (issue 16, chunked: the services' default).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from bench_util import ROOT, emit, machine, verdict
from e2e_stack import CHROMIUM_ARGS, Stack, cleanup, start_stack

TARGET_SECONDS = 15.0
# Issue 16: the 10-minute source.
LONG_TARGET_SECONDS = 4.0
PLAYER = """
(url) => new Promise((resolve) => {
  const video = document.getElementById('video');
  const hls = new Hls();
  hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) resolve({error: d.details}); });
  video.addEventListener('playing', () => {
    resolve({currentTime: video.currentTime, levels: hls.levels.length});
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  hls.loadSource(url);
  hls.attachMedia(video);
})
"""


def make_source(path: Path, seconds: int) -> Path:
    """1080p24 testsrc2 + stereo AAC at 2 Mbit/s; long sources repeat a 60 s piece
    (stream copy), so a 10-minute one takes seconds to make."""
    piece = min(seconds, 60)
    first = path if piece == seconds else path.with_name(f"piece-{path.name}")
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=24:duration={piece}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={piece}"),
        *("-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast"),
        *("-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-ac", "2", "-b:a", "128k", "-movflags", "+faststart"),
        str(first),
    )
    if first != path:
        loops = -(-seconds // piece) - 1
        ffmpeg(
            *("-stream_loop", str(loops), "-i", str(first), "-t", str(seconds)),
            *("-c", "copy", "-movflags", "+faststart", str(path)),
        )
        first.unlink()
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(  # noqa: S603 - fixed argv
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],  # noqa: S607
        check=True,
        timeout=1800,
    )


def upload(http: httpx.Client, admin: dict[str, str], path: Path) -> str:
    size = path.stat().st_size
    # Media assigns the key (uploads/<uploadId>/<file name>).
    up = http.post(
        "/api/admin/uploads",
        json={"kind": "source", "filename": path.name, "contentType": "video/mp4", "size": size},
        headers=admin,
    )
    up.raise_for_status()
    upload_id, part_size = up.json()["uploadId"], up.json()["partSize"]
    numbers = list(range(1, up.json()["partCount"] + 1))
    urls = http.post(
        f"/api/admin/uploads/{upload_id}/parts", json={"partNumbers": numbers}, headers=admin
    )
    urls.raise_for_status()
    parts = []
    with path.open("rb") as f, httpx.Client(timeout=300) as s3:
        for part in urls.json()["parts"]:
            f.seek((part["partNumber"] - 1) * part_size)
            put = s3.put(part["url"], content=f.read(part_size), headers=part["headers"])
            put.raise_for_status()
            parts.append({"partNumber": part["partNumber"], "etag": put.headers["ETag"].strip('"')})
    done = http.post(
        f"/api/admin/uploads/{upload_id}/complete", json={"parts": parts}, headers=admin
    )
    done.raise_for_status()
    return str(done.json()["key"])


class EventTrace:
    """Every event the stack publishes, with its arrival time (``--trace``):
    where between the POST and ``transcode.playable`` the seconds go."""

    def __init__(self, stack: Stack) -> None:
        self.url = stack.env.get("STUDIO_NATS_URL", "nats://127.0.0.1:4222")
        self.subjects = stack.env["STUDIO_EVENT_SUBJECT_ROOT"] + ".>"
        self.seen: list[tuple[float, str]] = []
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._subscribe(), self._loop).result(10)

    async def _subscribe(self) -> None:
        import nats

        self.nc = await nats.connect(self.url)

        async def seen(msg: Any) -> None:
            self.seen.append((time.monotonic(), msg.subject.split(".", 1)[1]))

        await self.nc.subscribe(self.subjects, cb=seen)

    def since(self, t0: float) -> list[tuple[float, str]]:
        """The events after ``t0``, as seconds after it (progress left out)."""
        return [(round(t - t0, 3), subject) for t, subject in self.seen if t >= t0]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.nc.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def measure(
    stack: Stack,
    page: Any,
    season_id: str,
    number: int,
    key: str,
    seconds: int,
    trace: EventTrace | None = None,
) -> dict[str, Any]:
    admin = stack.headers("admin")
    viewer = stack.headers("viewer", f"bench-{number}@bench.studio.test")
    # The viewer's page and hls.js are loaded before the clock starts: a player
    # already open, as a viewer's would be.
    page.goto(f"{stack.gateway_url}/api/titles")
    page.set_content('<video id="video" muted autoplay></video>')
    page.add_script_tag(path=str(ROOT / "web" / "player" / "vendor" / "hls.min.js"))
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
        t0 = time.monotonic()
        created = http.post(
            "/api/admin/episodes",
            json={"seasonId": season_id, "number": number, "name": f"E{number}", "sourceKey": key},
            headers=admin,
        )
        created.raise_for_status()
        episode_id = created.json()["id"]
        # As a player would: the playback route answers 404 until media has
        # heard of the episode, then 409 until it can serve it (the admin view
        # is read only to notice a failure).
        polls = 0
        while True:
            r = http.get(f"/api/episodes/{episode_id}/hls", headers=viewer)
            if r.status_code == 200:
                break
            if r.status_code not in (404, 409) or time.monotonic() - t0 > 600:
                raise RuntimeError(f"hls: {r.status_code} {r.text[:200]}")
            polls += 1
            if polls % 20 == 0:
                ep = http.get(f"/api/admin/episodes/{episode_id}", headers=admin).json()
                if ep["transcodeState"] == "failed":
                    raise RuntimeError(ep["transcodeLog"])
            time.sleep(0.1)
        t_url = time.monotonic() - t0
        outcome = page.evaluate(PLAYER, r.json()["url"])
        t_play = time.monotonic() - t0
        if "error" in outcome:
            raise RuntimeError(f"hls.js: {outcome['error']}")
        run = {
            "episode_id": episode_id,
            "url_issued_s": round(t_url, 2),
            "playing_s": round(t_play, 2),
            "levels": outcome["levels"],
            "ratio_to_limit": round(t_play / TARGET_SECONDS, 2),
            "verdict": verdict(t_play, TARGET_SECONDS, higher_is_better=False),
        }
        if seconds >= 600:
            run["verdict_4s"] = verdict(t_play, LONG_TARGET_SECONDS, higher_is_better=False)
        if trace is not None:
            run["events"] = trace.since(t0)
        return run


def wait_ready(stack: Stack, episode_id: str, within: float) -> float | None:
    admin = stack.headers("admin")
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        ep = httpx.get(
            f"{stack.gateway_url}/api/admin/episodes/{episode_id}", headers=admin, timeout=10
        ).json()
        if ep["transcodeState"] in ("ready", "failed"):
            return time.monotonic() - t0
        time.sleep(1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="60,600", help="source lengths in seconds")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the stack's services (repeatable), e.g. TRANSCODER_CHUNKING=false",
    )
    parser.add_argument(
        "--trace", action="store_true", help="list the stack's events with their times"
    )
    parser.add_argument("--log", type=Path, help="keep the stack's log here")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.env)
    lengths = [int(x) for x in args.lengths.split(",")]
    from playwright.sync_api import sync_playwright

    report: dict[str, Any] = {"machine": machine(), "settings": overrides, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-playable-") as work:
        sources = {}
        for seconds in lengths:
            t = time.monotonic()
            sources[seconds] = make_source(Path(work) / f"source-{seconds}s.mp4", seconds)
            size = sources[seconds].stat().st_size / 1e6
            print(f"source {seconds} s: {size:.0f} MB in {time.monotonic() - t:.0f} s", flush=True)
        # Playback URLs are polled: lift the per-user limit for the benchmark.
        stack = start_stack({"MEDIA_PLAYBACK_RATE_LIMIT": "100000", **overrides})
        try:
            admin = stack.headers("admin")
            with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
                slug = f"bench-{uuid.uuid4().hex[:8]}"
                title = http.post(
                    "/api/admin/titles",
                    json={"slug": slug, "name": "Bench", "type": "series"},
                    headers=admin,
                ).json()
                season = http.post(
                    "/api/admin/seasons", json={"titleId": title["id"], "number": 1}, headers=admin
                ).json()
                keys = {s: upload(http, admin, p) for s, p in sources.items()}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
                )
                page = browser.new_context(bypass_csp=True).new_page()
                trace = EventTrace(stack) if args.trace else None
                for n, seconds in enumerate(lengths, start=1):
                    run = measure(stack, page, season["id"], n, keys[seconds], seconds, trace)
                    print(f"{seconds} s source: {run}", flush=True)
                    if n < len(lengths):
                        # The next job must not wait in the queue behind this one.
                        run["then_ready_after_s"] = wait_ready(stack, run["episode_id"], 1800)
                    report["runs"][f"{seconds}s"] = run
                browser.close()
                if trace is not None:
                    trace.close()
        finally:
            stack.stop()
            if args.log is not None and stack.log_path is not None:
                args.log.write_bytes(stack.log_path.read_bytes())
            cleanup(stack)
    emit(report)


if __name__ == "__main__":
    main()
