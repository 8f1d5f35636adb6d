"""Rules for HLS object keys and the files inside an episode's HLS folder."""

from __future__ import annotations

import re
import uuid

from studio_common.errors import ProblemError

HLS_ROOT = "hls/"
# Unsigned copies of public episodes; the CDN serves this prefix without a
# signature and everything under hls/ only to trusted signers.
PUBLIC_ROOT = "public/hls/"
_VERSION_FOLDER = re.compile(r"^hls/([0-9a-f-]{36})/([0-9a-f]{32})/$")
MAX_PATH_LENGTH = 300
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")

CONTENT_TYPES = {
    "m3u8": "application/vnd.apple.mpegurl",
    "ts": "video/mp2t",
    "m4s": "video/mp4",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "aac": "audio/aac",
    "m4a": "audio/mp4",
    "vtt": "text/vtt",
    "webvtt": "text/vtt",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    # ASS/SSA originals and the fonts they were made with (styled subtitles).
    "ass": "text/x-ssa",
    "ssa": "text/x-ssa",
    "json": "application/json",
    "ttf": "font/ttf",
    "otf": "font/otf",
    "ttc": "font/collection",
    "woff": "font/woff",
    "woff2": "font/woff2",
}
PLAYLIST = "m3u8"


class InvalidHlsPath(ProblemError):
    status, slug, title = (
        400,
        "invalid-hls-path",
        "The path inside the episode's HLS folder is not valid",
    )


def _clean(path: str) -> bool:
    return (
        0 < len(path) <= MAX_PATH_LENGTH
        and _SAFE_PATH.match(path) is not None
        and all(part not in (".", "..") for part in path.split("/"))
    )


def version_folder(prefix: str, episode_id: uuid.UUID) -> str | None:
    """``hls/{episodeId}/{version}/`` of this episode, or None for anything else."""
    match = _VERSION_FOLDER.match(prefix)
    if match is None or match.group(1) != str(episode_id):
        return None
    return prefix


def master_folder(key: str, episode_id: uuid.UUID) -> str | None:
    """The version folder of a master playlist key of this episode, or None."""
    if not key.endswith(".m3u8") or "/" not in key:
        return None
    folder, name = key.rsplit("/", 1)
    if not _clean(name):
        return None
    return version_folder(folder + "/", episode_id)


def version_of(prefix: str) -> str:
    return prefix.rstrip("/").rsplit("/", 1)[-1]


def public_copy(prefix: str) -> str:
    """``hls/{episodeId}/{version}/`` → ``public/hls/{episodeId}/{version}/``."""
    assert prefix.startswith(HLS_ROOT)
    return "public/" + prefix


def file_in_folder(path: str) -> tuple[str, str]:
    """Validate a path relative to an episode's HLS folder; returns it and its content type.

    Traversal (``..``, ``.``, empty segments, absolute paths, backslashes,
    anything outside a conservative character set) and extensions that are no
    part of an HLS presentation raise :class:`InvalidHlsPath`.
    """
    if not _clean(path):
        raise InvalidHlsPath("The path may not leave the episode's folder.")
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    content_type = CONTENT_TYPES.get(ext)
    if content_type is None:
        raise InvalidHlsPath(f"'.{ext}' files are not part of an HLS presentation.")
    return path, content_type
