"""The flow of test_flow.py (upload → transcode → play in Chromium) against a
stack whose services run from their images: `STUDIO_IMAGES=1 studio-dev up`,
each service and the transcoder worker a read-only container as its non-root
user (host network), the gateway and S3 stand-in as usual.

`make test` builds the images first (`make images`); the fixture builds what is
missing (cached layers otherwise). Skipped only where no Docker engine can run.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_stack import ROOT, Stack, cleanup, start_stack
from test_flow import (  # the same steps and checks as the flow on the local processes
    admin,
    http,
    new_episode,
    ok,
    play_past,
    source,
    viewer,
    watch_episode,
)

from studio_devstack import images

pytestmark = [pytest.mark.e2e, pytest.mark.images, pytest.mark.timeout(1200)]

__all__ = ["admin", "http", "source", "viewer"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A private stack in image mode (overrides the session's stack here)."""
    try:
        images.ensure_docker()
    except images.ImageBuildError as exc:
        pytest.skip(f"no Docker engine can run here: {exc}")
    images.build(ROOT, [*images.SERVICES])
    started = start_stack({"STUDIO_IMAGES": "1"})
    try:
        yield started
    finally:
        started.stop()
        cleanup(started)
        # Stopping the stack removed its containers.
        label = f"label=studio.stack={started.port_offset}"
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", label],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert not left, f"containers left after the stack stopped: {left}"


def test_the_services_run_from_their_images(stack: Stack) -> None:
    label = f"label=studio.stack={stack.port_offset}"
    listed = subprocess.run(
        ["docker", "ps", "--filter", label, "--format", "{{.Image}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    expected = {f"studio/studio-{name}:dev" for name in images.SERVICES}
    assert set(listed) == expected, listed
    # API and worker both from the transcoder image.
    assert listed.count("studio/studio-transcoder:dev") == 2


def test_upload_transcode_and_play_in_chromium(
    http: httpx.Client,
    stack: Stack,
    admin: dict[str, str],
    viewer: dict[str, str],
    source: Path,
    page: Any,
    hls_js: Path,
) -> None:
    slug = f"e2e-img-{uuid.uuid4().hex[:8]}"
    episode = new_episode(http, admin, source, slug=slug, name="Pilot")
    ready, seen = watch_episode(http, admin, episode["id"], {"ready", "failed"}, within=180)
    assert ready["transcodeState"] == "ready", (ready["transcodeLog"], seen)
    assert set(ready["renditions"]) >= {"1080p", "720p", "480p"}

    issued = ok(http.get(f"/api/episodes/{episode['id']}/hls", headers=viewer))
    started = time.monotonic()
    state = play_past(page, stack, hls_js, issued["url"], 2.0)
    assert not [e for e in state["errors"] if e.get("fatal")], state["errors"]
    assert page.evaluate("() => document.getElementById('video').currentTime") > 2.0
    assert time.monotonic() - started < 60
