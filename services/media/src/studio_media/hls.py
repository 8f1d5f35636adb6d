"""Rules for HLS object keys and the files inside an episode's HLS folder."""

from __future__ import annotations

import posixpath
import re

from studio_common.errors import ProblemError

HLS_ROOT = "hls/"
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


def is_master_key(key: str) -> bool:
    """A master playlist key media will serve from: ``hls/<folder...>/<name>.m3u8``."""
    if not key.startswith(HLS_ROOT) or not key.endswith(".m3u8") or len(key) > 1024:
        return False
    return _clean(key) and posixpath.dirname(key) != "hls"


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
