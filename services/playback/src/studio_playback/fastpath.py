"""``POST /api/playback`` without the framework's per-request machinery.

Position writes are most of the service's traffic. Routing, dependency
resolution and the exception middleware cost about a third of such a request,
so :class:`PositionWriteFastPath` (an ASGI middleware inside the shared
request-context middleware, so request ids, metrics and access logs still
apply) answers exactly ``POST /api/playback`` itself, with the same steps the
route takes: the route's access check (``current_user``), :func:`write_position`,
and the app's own exception handlers for errors. Everything else, and every
other method on the path, goes through FastAPI as usual; the route stays
declared there (OpenAPI, ``x-access``) and is used when the fast path is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from studio_common.app import runtime_of
from studio_common.auth import Principal, current_user
from studio_common.errors import PayloadTooLarge
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


@dataclass(frozen=True)
class _RouteLabel:
    """What the request-context middleware reads to label metrics and logs."""

    path: str = PATH
    path_format: str = PATH


_ROUTE = _RouteLabel()


class PositionWriteFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        fastapi_app: FastAPI = scope["app"]
        # Metrics and access logs label requests by the matched route's template.
        scope["route"] = _ROUTE
        request = Request(scope, receive)
        try:
            raw = await self._body(receive)
            principal = await current_user(request)
            response = await write_position(request, principal, raw)
        except Exception as exc:
            handler = self._handler_for(fastapi_app, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    @staticmethod
    async def _body(receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"A position write is at most {MAX_BODY_BYTES} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _handler_for(app: FastAPI, exc: Exception) -> Any:
        """The app's exception handler for ``exc`` (by its class hierarchy), if any."""
        handlers = app.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                # The catch-all is the outer middleware's job (it logs the request id).
                return None
            if cls in handlers:
                return handlers[cls]
        return None
