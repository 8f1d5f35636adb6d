"""Playback routes: the episode's HLS URL, and the token-checked files behind it."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from studio_common.access import Access, access
from studio_common.auth import OptionalUser
from studio_common.db import SessionDep
from studio_common.errors import RATE_LIMITED
from studio_media.context import ContextDep
from studio_media.schemas import PlaybackOut
from studio_media.service.playback import EDGE_HEADER, EDGE_STORAGE, PlaybackService

router = APIRouter(tags=["media playback"])


@router.get(
    "/api/episodes/{episode_id}/hls",
    response_model=PlaybackOut,
    responses={409: {"description": "The episode is not playable yet"}, **RATE_LIMITED},
    **access(Access.public),
)
async def episode_hls(
    episode_id: uuid.UUID,
    user: OptionalUser,
    request: Request,
    response: Response,
    session: SessionDep,
    ctx: ContextDep,
) -> PlaybackOut:
    """A short-lived URL of the episode's master playlist that HLS.js can play.
    404 for an unknown episode, 401 for a private one without a signed-in
    caller (public episodes play for anyone), 409 while it is not playable yet."""
    # The peer, or the client a trusted proxy names (STUDIO_TRUSTED_PROXIES).
    client = request.client.host if request.client else "unknown"
    await ctx.limit("playback", user.subject if user else f"anonymous:{client}")
    out = await PlaybackService(session, ctx).issue_url(episode_id, signed_in=user is not None)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (out.cookies or {}).items():
        response.set_cookie(
            name,
            value,
            max_age=ctx.settings.playback_url_ttl_seconds,
            domain=ctx.settings.cdn_cookie_domain,
            path="/",
            secure=True,
            httponly=True,
            samesite="none",
        )
    return out


HLS_FILE = "/hls/{token}/{episode_id}/{path:path}"
HLS_FILE_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "The path is not a file of an HLS folder"},
    403: {"description": "The token is forged, expired or for another episode"},
}


@router.get(
    HLS_FILE,
    response_class=Response,
    responses={
        200: {"description": "A playlist, segment or subtitle file"},
        **HLS_FILE_RESPONSES,
        416: {"description": "The range is not satisfiable"},
    },
    **access(Access.public),
)
async def hls_file(
    token: str,
    episode_id: uuid.UUID,
    path: str,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
) -> Response:
    """A file of the episode's HLS folder (`{version}/...`, as the issued URL
    names it). The token in the path is checked on every request: 403 when
    forged, expired or issued for another episode; 404 for a version the
    episode no longer has."""
    return await PlaybackService(session, ctx).serve(
        token, episode_id, path, request.headers.get("range"), edge=_edge(request)
    )


@router.head(
    HLS_FILE,
    response_class=Response,
    responses={
        200: {"description": "The headers a GET of the file would answer"},
        **HLS_FILE_RESPONSES,
    },
    **access(Access.public),
)
async def hls_file_head(
    token: str,
    episode_id: uuid.UUID,
    path: str,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
) -> Response:
    """HEAD of a file of the episode's HLS folder: CDNs and players probe with it."""
    return await PlaybackService(session, ctx).serve(
        token, episode_id, path, None, head=True, edge=_edge(request)
    )


def _edge(request: Request) -> bool:
    """The gateway fetches the bytes itself (ADR 8). A client sending the header
    without such a gateway only learns a short URL of a file its token opens."""
    return request.headers.get(EDGE_HEADER) == EDGE_STORAGE
