"""The episode's styled subtitles in the playback answer.

The transcoder writes ``subs/subtitles.json`` into each version folder: every
track (WebVTT always, the ASS original when it was kept) and the fonts the ASS
tracks need, as paths inside the folder. Media turns those paths into URLs of
the same signed scheme as the playlists (ADR 4), so a player gets everything
from one answer. A version folder never changes once written, so a manifest
that was read is kept; a missing one (a transcode still running, an episode
from before subtitles had one) is asked for again after a short while.
Subtitles are an extra: storage failing here leaves them out of the answer,
it does not fail playback.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from studio_common.errors import ProblemError
from studio_media.hls import file_in_folder
from studio_media.schemas import SubtitleFontOut, SubtitleTrackOut
from studio_media.storage import MediaStorage

log = logging.getLogger("studio.media.subtitles")

MANIFEST = "subs/subtitles.json"
MAX_MANIFEST_BYTES = 1024 * 1024
# A folder without a manifest is asked again after this long.
MISSING_TTL_SECONDS = 15.0
CACHED_FOLDERS = 1024

Manifest = dict[str, Any]


class ManifestCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Manifest | None, float]] = OrderedDict()

    async def get(self, storage: MediaStorage, folder: str) -> Manifest | None:
        now = self._clock()
        hit = self._entries.get(folder)
        if hit is not None and (hit[0] is not None or now - hit[1] < MISSING_TTL_SECONDS):
            self._entries.move_to_end(folder)
            return hit[0]
        try:
            body = await storage.read(folder + MANIFEST)
        except Exception:  # an extra: logged, and playback goes on without it
            log.warning("subtitle metadata unreadable", extra={"folder": folder}, exc_info=True)
            return None
        manifest = parse(body) if body is not None else None
        self._entries[folder] = (manifest, now)
        self._entries.move_to_end(folder)
        while len(self._entries) > CACHED_FOLDERS:
            self._entries.popitem(last=False)
        return manifest


def _path(value: Any) -> str | None:
    """A file of the folder that media would serve, or None."""
    if not isinstance(value, str):
        return None
    try:
        return file_in_folder(value)[0]
    except ProblemError:
        return None


def parse(body: bytes) -> Manifest | None:
    if len(body) > MAX_MANIFEST_BYTES:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("tracks"), list) else None


def _text(value: Any, limit: int = 200) -> str:
    return value[:limit] if isinstance(value, str) else ""


def resolve(
    manifest: Manifest, url_of: Callable[[str], str]
) -> tuple[list[SubtitleTrackOut], list[SubtitleFontOut]]:
    """The manifest's tracks and fonts with URLs from ``url_of(path)``; entries
    naming a path media would not serve are left out."""
    fonts: list[SubtitleFontOut] = []
    font_urls: dict[str, str] = {}
    for font in manifest.get("fonts") or []:
        if not isinstance(font, dict):
            continue
        path = _path(font.get("path"))
        if path is None or not path.startswith("fonts/"):
            continue
        font_urls[path] = url_of(path)
        families = [f[:200] for f in font.get("families") or [] if isinstance(f, str)]
        size = font.get("size")
        fonts.append(
            SubtitleFontOut(
                url=font_urls[path],
                families=families[:20],
                content_type=_text(font.get("contentType"), 100) or "font/ttf",
                size=size if isinstance(size, int) else None,
            )
        )
    tracks: list[SubtitleTrackOut] = []
    for track in manifest.get("tracks") or []:
        if not isinstance(track, dict):
            continue
        webvtt = _path(track.get("webvtt"))
        if webvtt is None:
            continue
        ass = _path(track.get("ass"))
        tracks.append(
            SubtitleTrackOut(
                name=_text(track.get("name"), 64),
                language=_text(track.get("language"), 35),
                label=_text(track.get("label")),
                default=track.get("default") is True,
                forced=track.get("forced") is True,
                webvtt=url_of(webvtt),
                ass=url_of(ass) if ass is not None else None,
                fonts=[
                    font_urls[p]
                    for p in track.get("fontFiles") or []
                    if isinstance(p, str) and p in font_urls
                ],
                missing_fonts=[
                    f[:200] for f in track.get("missingFonts") or [] if isinstance(f, str)
                ][:50],
            )
        )
    return tracks, fonts
