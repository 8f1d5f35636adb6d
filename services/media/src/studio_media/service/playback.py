"""Playback: issuing an episode's HLS URL, and serving the files behind it.

Token mode (ADR 4): ``/hls/{token}/{episodeId}/{version}/{path}``. The URL
names the version folder it was issued for (ADR 6), so a re-transcode never
changes the files under a player's feet; the folder must still be registered
to the episode. Playlists are served by this service unchanged, so the
relative links in them resolve to URLs that carry the same token; segments are
streamed (Range supported) or redirected to a short presigned S3 GET, which is
safe because a segment links to nothing. CDN mode: a CloudFront signed URL and
cookies whose policy covers the private folder, or for a public episode a plain
URL of its unsigned copy under ``public/hls/``.
"""

from __future__ import annotations

import posixpath
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from fastapi import Response
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from studio_common.errors import Conflict, NotFound, ProblemError, Unauthorized
from studio_media import tokens
from studio_media.config import MediaSettings
from studio_media.context import MediaContext
from studio_media.hls import PLAYLIST, file_in_folder, public_copy, version_folder, version_of
from studio_media.models import EpisodeAsset
from studio_media.repository import AssetRepository
from studio_media.schemas import PlaybackOut
from studio_media.storage import error_code
from studio_media.subtitles import resolve as resolve_subtitles

_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# A redirect target only has to live until the player follows it.
REDIRECT_TTL_SECONDS = 120
# The gateway asks for an edge answer with this request header (ADR 8); media
# then answers with where the bytes are instead of the bytes.
EDGE_HEADER = "X-Studio-Hls-Edge"
EDGE_STORAGE = "storage"
# Where the gateway fetches the object: its internal location, and the header
# with the presigned URL that location proxies to.
EDGE_LOCATION = "/__studio/hls-storage"
EDGE_URL_HEADER = "X-Studio-Storage-Url"
# The gateway follows the URL at once; a minute covers a slow storage connect.
EDGE_URL_TTL_SECONDS = 60


class EpisodeNotReady(Conflict):
    slug, title = "episode-not-ready", "The episode cannot be played yet"


class EpisodeTranscodeFailed(Conflict):
    slug, title = "episode-transcode-failed", "The episode's transcoding failed"


class EpisodeMediaMissing(Conflict):
    slug, title = "episode-media-missing", "The episode's media is gone from storage"


class RangeNotSatisfiable(ProblemError):
    status, slug, title = 416, "range-not-satisfiable", "The requested range is not satisfiable"


def single_range(header: str | None) -> str | None:
    """The Range header when it asks for one byte range; multi-range requests get the whole file."""
    if not header:
        return None
    match = _SINGLE_RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    return header.strip()


@dataclass
class PlaybackService:
    session: AsyncSession
    ctx: MediaContext

    async def playable_asset(
        self, episode_id: uuid.UUID, *, signed_in: bool = True
    ) -> EpisodeAsset:
        asset = await AssetRepository(self.session).get(episode_id)
        if asset is None or asset.state == "deleted":
            raise NotFound(f"No episode with id {episode_id}.")
        if not (signed_in or asset.public):
            raise Unauthorized("Sign in to watch this episode.")
        if asset.state == "failed":
            raise EpisodeTranscodeFailed(
                "Transcoding this episode failed; it can be played once it is transcoded again.",
                extra={"state": asset.state},
            )
        if asset.state == "missing":
            raise EpisodeMediaMissing(
                "This episode's video is no longer in storage; it can be played once its "
                "source is uploaded and transcoded again.",
                extra={"state": asset.state},
            )
        if not asset.playable:
            raise EpisodeNotReady(
                "The episode is still being transcoded; it can be played once its first "
                "segments are ready.",
                extra={"state": asset.state},
            )
        return asset

    async def issue_url(self, episode_id: uuid.UUID, *, signed_in: bool = True) -> PlaybackOut:
        asset = await self.playable_asset(episode_id, signed_in=signed_in)
        master_key = asset.hls_master_key
        prefix = asset.hls_prefix
        assert master_key is not None
        assert prefix is not None
        settings = self.ctx.settings
        expires_at = int(time.time()) + settings.playback_url_ttl_seconds
        expires = datetime.fromtimestamp(expires_at, UTC)
        name = posixpath.basename(master_key)
        if settings.playback_mode == "cdn":
            cdn = self.ctx.cdn
            assert cdn is not None
            if asset.public and asset.public_master_key:
                # Only the unsigned copy is reachable without a signature.
                public = public_copy(prefix)
                out = PlaybackOut(url=cdn.url_for(asset.public_master_key), expires_at=None)
                return await self._with_subtitles(out, prefix, lambda p: cdn.url_for(public + p))
            signed = cdn.sign_folder(prefix, name, expires)
            # The folder policy signs every file of it: the same query works for each.
            query = urlsplit(signed.url).query
            out = PlaybackOut(url=signed.url, expires_at=expires, cookies=signed.cookies)
            return await self._with_subtitles(
                out, prefix, lambda p: f"{cdn.url_for(prefix + p)}?{query}"
            )
        token = tokens.sign(settings.signing_keys()[0], episode_id, expires_at)
        # Never the request's Host: a forged one would come back in the URL. Without
        # a configured base (development only) the URL is relative to the gateway.
        base = (settings.public_base_url or "").rstrip("/")
        folder_url = f"{base}/hls/{token}/{episode_id}/{version_of(prefix)}/"
        out = PlaybackOut(url=folder_url + name, expires_at=expires)
        return await self._with_subtitles(out, prefix, lambda p: folder_url + p)

    async def _with_subtitles(
        self, out: PlaybackOut, prefix: str, url_of: Callable[[str], str]
    ) -> PlaybackOut:
        """The folder's subtitle tracks and fonts (``subs/subtitles.json``), if it has them."""
        manifest = await self.ctx.subtitle_manifests.get(self.ctx.storage, prefix)
        if manifest is not None:
            out.subtitles, out.fonts = resolve_subtitles(manifest, url_of)
        return out

    async def serve(
        self,
        token: str,
        episode_id: uuid.UUID,
        path: str,
        range_header: str | None,
        *,
        head: bool = False,
        edge: bool = False,
    ) -> Response:
        settings = self.ctx.settings
        if edge:
            return edge_answer(self.ctx, token, episode_id, path, head=head)
        expires_at, folder, inner, content_type = checked_file(settings, token, episode_id, path)
        if await AssetRepository(self.session).serving(episode_id, folder) is None:
            raise NotFound("No such file in this episode.")
        key = folder + inner
        remaining = max(1, expires_at - int(time.time()))
        headers: dict[str, str] = {}
        if settings.hls_cors_allow_origin:
            headers["Access-Control-Allow-Origin"] = settings.hls_cors_allow_origin
            headers["Access-Control-Expose-Headers"] = "Content-Length, Content-Range"

        storage = self.ctx.storage
        is_playlist = path.endswith("." + PLAYLIST)
        if head:
            # What a GET would answer, without the body (CDNs and players probe with HEAD).
            info = await storage.head(key)
            if info is None:
                raise NotFound("No such file in this episode.")
            headers["Cache-Control"] = (
                "private, no-cache" if is_playlist else f"private, max-age={min(remaining, 86_400)}"
            )
            headers["Content-Length"] = str(info.size)
            if not is_playlist:
                headers["Accept-Ranges"] = "bytes"
            return Response(status_code=200, media_type=content_type, headers=headers)
        if is_playlist:
            body = await storage.read(key)
            if body is None:
                raise NotFound("No such playlist.")
            # Playlists of a job still running grow (EVENT type): never cache them long.
            headers["Cache-Control"] = "private, no-cache"
            return Response(body, media_type=content_type, headers=headers)

        headers["Cache-Control"] = f"private, max-age={min(remaining, 86_400)}"
        if settings.hls_segment_delivery == "redirect":
            url = storage.presign_get(key, min(remaining, REDIRECT_TTL_SECONDS))
            return RedirectResponse(url, status_code=302, headers=headers)
        try:
            stream = await storage.stream(key, single_range(range_header))
        except ClientError as exc:
            if error_code(exc) == "InvalidRange":
                info = await storage.head(key)
                size = info.size if info else 0
                raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"}) from exc
            raise
        if stream is None:
            raise NotFound("No such file in this episode.")
        headers["Accept-Ranges"] = "bytes"
        headers["Content-Length"] = str(stream.length)
        if stream.etag:
            headers["ETag"] = stream.etag
        if stream.content_range:
            headers["Content-Range"] = stream.content_range
        return StreamingResponse(
            stream.chunks(), status_code=stream.status, media_type=content_type, headers=headers
        )


def checked_file(
    settings: MediaSettings, token: str, episode_id: uuid.UUID, path: str
) -> tuple[int, str, str, str]:
    """The token's expiry, the version folder, the file inside it and its content
    type, for a path under ``/hls/{token}/{episodeId}/``. The token first:
    nothing about the episode is revealed to a bad token."""
    expires_at = tokens.verify(settings.signing_keys(), token, episode_id)
    path, content_type = file_in_folder(path)
    version, _, inner = path.partition("/")
    folder = version_folder(f"hls/{episode_id}/{version}/", episode_id)
    if folder is None or not inner:
        raise NotFound("No such file in this episode.")
    return expires_at, folder, inner, content_type


def edge_answer(
    ctx: MediaContext, token: str, episode_id: uuid.UUID, path: str, *, head: bool
) -> Response:
    """The gateway's answer (ADR 8): no database and no bytes, only where the
    object is. The token names the episode and the path the version folder; a
    folder that was deleted (a retired transcode, a deleted episode) answers 404
    from storage. The gateway passes storage's headers on (Cache-Control as the
    transcoder stored it, ETag, Content-Range) and turns its errors into problems."""
    _, folder, inner, _ = checked_file(ctx.settings, token, episode_id, path)
    method = "HEAD" if head else "GET"
    url = ctx.storage.presign_for_edge(folder + inner, method, EDGE_URL_TTL_SECONDS)
    # No Cache-Control here: nginx would keep it over storage's.
    return Response(
        status_code=200, headers={"X-Accel-Redirect": EDGE_LOCATION, EDGE_URL_HEADER: url}
    )
