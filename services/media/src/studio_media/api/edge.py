"""The gateway's token check on every HLS file (ADR 8) without FastAPI's routing.

Each viewer asks for a segment every few seconds, and through the gateway media
only checks the token and names the object (no database, no bytes), so the
framework's routing and dependency resolution would be most of the cost. With
the gateway's header, a GET or HEAD of ``/hls/{token}/{episodeId}/{path}`` with
a canonical episode id is answered here by :func:`studio_media.service.playback.edge_answer`,
the code the declared routes run; anything else goes through them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from studio_common.access import Access
from studio_common.app import runtime_of
from studio_common.fastpath import FastPath, header
from studio_media.api.playback import HLS_FILE
from studio_media.context import MediaContext
from studio_media.service.playback import EDGE_HEADER, EDGE_STORAGE, edge_answer

_PREFIX = "/hls/"
_EDGE_HEADER = EDGE_HEADER.lower().encode()
_EDGE_STORAGE = EDGE_STORAGE.encode()


@dataclass(frozen=True)
class EdgeFile:
    token: str
    episode_id: uuid.UUID
    path: str
    head: bool


class HlsEdgeFastPath(FastPath[EdgeFile]):
    route = HLS_FILE
    access = Access.public

    def match(self, scope: Scope) -> EdgeFile | None:
        path: str = scope["path"]
        method: str = scope["method"]
        if (
            method not in ("GET", "HEAD")
            or not path.startswith(_PREFIX)
            or header(scope, _EDGE_HEADER) != _EDGE_STORAGE
        ):
            return None
        token, _, rest = path[len(_PREFIX) :].partition("/")
        episode, _, inner = rest.partition("/")
        # Only the canonical form: any other spelling gets the route's own answer.
        if not token or len(episode) != 36:
            return None
        try:
            episode_id = uuid.UUID(episode)
        except ValueError:
            return None
        if str(episode_id) != episode.lower():
            return None
        return EdgeFile(token, episode_id, inner, method == "HEAD")

    async def answer(self, request: Request, matched: EdgeFile) -> Response:
        ctx: MediaContext = runtime_of(request).context
        return edge_answer(ctx, matched.token, matched.episode_id, matched.path, head=matched.head)
