"""The identity service: users, roles, Clerk webhooks and the development token issuer."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import APIRouter, FastAPI

from studio_common.app import Runtime, create_service_app
from studio_common.consumer import EventConsumers
from studio_identity import subscribers
from studio_identity.api import issuer, users, webhooks
from studio_identity.clerk import ClerkRoleSink, NoOpRoleSink, RoleSink
from studio_identity.config import IdentitySettings
from studio_identity.dev_limit import DevTokenLimiter
from studio_identity.issuer import dev_key_store
from studio_identity.models import messaging


def role_sink_for(settings: IdentitySettings) -> RoleSink:
    secret = settings.clerk_secret_key.get_secret_value()
    if not secret:
        return NoOpRoleSink()
    return ClerkRoleSink(
        secret, base_url=settings.clerk_api_url, timeout=settings.clerk_timeout_seconds
    )


def create_app(settings: IdentitySettings | None = None) -> FastAPI:
    settings = settings or IdentitySettings()
    sink = role_sink_for(settings)
    keys = dev_key_store(settings) if settings.dev_issuer_enabled else None

    routers: list[APIRouter] = [users.router, users.admin, webhooks.router, issuer.jwks_router]
    # Not merely refused outside development: the route does not exist there.
    if settings.dev_token_route_enabled:
        routers.append(issuer.dev_router)

    def register(consumers: EventConsumers) -> None:
        subscribers.register(consumers, sink)

    def on_startup(runtime: Runtime, stack: AsyncExitStack) -> None:
        if keys is not None:
            keys.load_or_create()  # the key pair is generated on the first start
        runtime.extras["role_sink"] = sink
        runtime.extras["dev_keys"] = keys
        stack.push_async_callback(sink.aclose)

    app = create_service_app(
        settings,
        title="Studio.Anime identity",
        description="Users and roles, Clerk webhooks, and the development token issuer.",
        routers=routers,
        tables=messaging,
        register_consumers=register,
        on_startup=on_startup,
    )
    app.state.dev_keys = keys
    app.state.dev_token_limiter = DevTokenLimiter(
        settings.dev_token_rate_limit, settings.dev_token_rate_window_seconds
    )
    return app
