"""``POST /api/playback`` without the framework's per-request machinery.

Position writes are most of the service's traffic. Routing, dependency
resolution and the exception middleware cost about a third of such a request,
so :class:`PositionWriteFastPath` (a :class:`studio_common.fastpath.FastPath`)
answers exactly ``POST /api/playback`` itself, with the same steps the route
takes: the route's access check (``current_user``) and :func:`write_position`.
Every other method on the path goes through FastAPI as usual; the route stays
declared there and is used when the fast path is off.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from studio_common.access import Access
from studio_common.app import runtime_of
from studio_common.auth import Principal, current_user
from studio_common.fastpath import FastPath, read_body
from studio_playback.context import PlaybackContext
from studio_playback.positions import now_micros, ordering_key
from studio_playback.schemas import PositionIn

PATH = "/api/playback"
MAX_BODY_BYTES = 16 * 1024


def _validation_error(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
    )


async def write_position(request: Request, principal: Principal, raw: bytes) -> Response:
    """Validate the body, save the position, answer with the stored state."""
    try:
        # Parsed and validated from bytes in one step (pydantic's JSON parser).
        body = PositionIn.model_validate_json(raw)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    ctx: PlaybackContext = runtime_of(request).context
    writer = ctx.positions
    key = ordering_key(body.sequence, body.client_time, now_micros())
    saved = await writer.save(principal.subject, body.episode_id, body.position_sec, key)
    return Response(saved.model_dump_json(by_alias=True), media_type="application/json")


class PositionWriteFastPath(FastPath[bool]):
    route = PATH
    access = Access.user

    def match(self, scope: Scope) -> bool | None:
        return True if scope["path"] == PATH and scope["method"] == "POST" else None

    async def answer(self, request: Request, matched: bool) -> Response:
        raw = await read_body(request.receive, MAX_BODY_BYTES)
        principal = await current_user(request)
        return await write_position(request, principal, raw)
