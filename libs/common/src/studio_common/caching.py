"""Cache headers that follow from who may see a response.

A response to a request that carried credentials, or from a route that needs
them, is the caller's alone: ``Cache-Control: no-store`` (whatever the route
set) and ``Vary: Authorization``, so neither a browser nor a shared cache keeps
it or hands it to someone else. An anonymous response of a public route keeps
the caching its route chose, with ``Vary: Authorization`` when it may be
cached at all, since a signed-in caller of the same URL can be answered
differently.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio_common.access import ACCESS_EXTENSION, Access

NO_STORE = b"no-store"


def _public_route(scope: Scope) -> bool:
    extra = getattr(scope.get("route"), "openapi_extra", None) or {}
    return bool(extra.get(ACCESS_EXTENSION) == Access.public.value)


class CachePolicyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentials = any(name == b"authorization" for name, _ in scope["headers"])

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_policy(
                    list(message.get("headers", [])),
                    private=credentials or not _public_route(scope),
                )
            await send(message)

        await self.app(scope, receive, send_with_policy)


def _with_policy(headers: list[tuple[bytes, bytes]], *, private: bool) -> list[tuple[bytes, bytes]]:
    cache_control = [v for k, v in headers if k.lower() == b"cache-control"]
    if private:
        headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
        headers.append((b"cache-control", NO_STORE))
    elif not cache_control or b"no-store" in cache_control[0].lower():
        return headers
    varies = b", ".join(v for k, v in headers if k.lower() == b"vary").lower()
    if b"authorization" not in varies and b"*" not in varies:
        headers.append((b"vary", b"Authorization"))
    return headers
