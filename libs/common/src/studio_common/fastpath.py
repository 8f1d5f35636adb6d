"""One hot route answered before FastAPI's routing.

Routing, dependency resolution and the exception middleware cost a noticeable
share of a tiny request. A :class:`FastPath` is an ASGI middleware placed
innermost of the app's user middleware (so the shared request-context one still
gives request ids, metrics and access logs) that answers the requests its
``match`` accepts with the same service code the declared route calls, and the
app's own exception handlers for errors. Everything else goes through FastAPI;
the route stays declared there (OpenAPI, ``x-access``) and answers whenever the
fast path does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from studio_common.access import ACCESS_EXTENSION, Access
from studio_common.errors import PayloadTooLarge

M = TypeVar("M")


@dataclass(frozen=True)
class RouteLabel:
    """What the shared middleware read of the matched route: its template (metrics
    and logs) and its access declaration (the cache policy)."""

    path: str
    path_format: str
    openapi_extra: dict[str, Any]


class FastPath(Generic[M]):
    """Subclasses set ``route`` and ``access`` (the declared route's template and
    access level) and implement ``match`` (what the request names, or None to
    leave it to FastAPI) and ``answer``, which checks access as the route does."""

    route: str
    access: Access

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._label = RouteLabel(self.route, self.route, {ACCESS_EXTENSION: self.access.value})

    def match(self, scope: Scope) -> M | None:
        raise NotImplementedError

    async def answer(self, request: Request, matched: M) -> Response:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = self.match(scope) if scope["type"] == "http" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        fastapi_app: FastAPI = scope["app"]
        # Metrics and access logs label requests by the matched route's template.
        scope["route"] = self._label
        request = Request(scope, receive)
        try:
            response = await self.answer(request, matched)
        except Exception as exc:
            handler = handler_for(fastapi_app, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    @classmethod
    def install(cls, app: FastAPI) -> None:
        # Innermost of the app's middleware: inside the shared request-context
        # one (request id, metrics, access log), outside routing.
        app.user_middleware.append(Middleware(cls))


def header(scope: Scope, name: bytes) -> bytes | None:
    """A request header's value (``name`` lower-case), without building a Request."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused with a 413 problem beyond ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"This request's body is at most {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def handler_for(app: FastAPI, exc: Exception) -> Any:
    """The app's exception handler for ``exc`` (by its class hierarchy), if any."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            # The catch-all is the outer middleware's job (it logs the request id).
            return None
        if cls in handlers:
            return handlers[cls]
    return None
