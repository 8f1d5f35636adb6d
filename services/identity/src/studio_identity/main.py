"""The identity service: users, roles, Clerk webhooks and the development token issuer."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from fastapi import APIRouter, FastAPI

from studio_common.app import Runtime, create_service_app
from studio_common.consumer import EventConsumers
from studio_common.tasks import run_in_background
from studio_identity import subscribers
from studio_identity.api import issuer, users, webhooks
from studio_identity.clerk import ClerkRoleSink, NoOpRoleSink, RoleSink
from studio_identity.config import IdentitySettings
from studio_identity.context import IdentityContext
from studio_identity.dev_limit import DevTokenLimiter
from studio_identity.issuer import dev_key_store
from studio_identity.models import messaging
from studio_identity.roles import RoleWriter, reconcile

log = logging.getLogger("studio.identity")


def role_sink_for(settings: IdentitySettings) -> RoleSink:
    secret = settings.clerk_secret_key.get_secret_value()
    if not secret:
        if settings.clerk_write_back_required:
            # Clerk's tokens would keep every promotion or demotion out of the
            # role claim for good; the role bucket only ever lowers a role.
            raise ValueError(
                "IDENTITY_CLERK_SECRET_KEY is not set: in production identity writes "
                "every role change back to Clerk and does not start without it"
            )
        return NoOpRoleSink()
    return ClerkRoleSink(
        secret, base_url=settings.clerk_api_url, timeout=settings.clerk_timeout_seconds
    )


async def _reconcile(writer: RoleWriter, runtime: Runtime[IdentityContext]) -> None:
    try:
        await reconcile(writer, runtime.js, runtime.database)
    except asyncio.CancelledError:
        raise
    except Exception:
        # The consumers still publish every new change; the next start retries.
        log.exception("could not reconcile the role bucket")


def create_app(settings: IdentitySettings | None = None) -> FastAPI:
    settings = settings or IdentitySettings()
    sink = role_sink_for(settings)
    keys = dev_key_store(settings) if settings.dev_issuer_enabled else None

    routers: list[APIRouter] = [users.router, users.admin, webhooks.router, issuer.jwks_router]
    # Not merely refused outside development: the route does not exist there.
    if settings.dev_token_route_enabled:
        routers.append(issuer.dev_router)

    writer = RoleWriter(settings.event_stream)

    def register(consumers: EventConsumers) -> None:
        subscribers.register(consumers, sink, writer)

    def context(runtime: Runtime[IdentityContext], stack: AsyncExitStack) -> IdentityContext:
        if keys is not None:
            keys.load_or_create()  # the key pair is generated on the first start
        stack.push_async_callback(sink.aclose)
        if settings.run_consumers:
            # In the background: startup does not wait for a large table.
            run_in_background(stack, _reconcile(writer, runtime), "identity-role-reconcile")
        return IdentityContext(
            settings=settings,
            role_sink=sink,
            role_writer=writer,
            dev_keys=keys,
            dev_token_limiter=DevTokenLimiter(
                settings.dev_token_rate_limit, settings.dev_token_rate_window_seconds
            ),
        )

    return create_service_app(
        settings,
        title="Studio.Anime identity",
        description="Users and roles, Clerk webhooks, and the development token issuer.",
        routers=routers,
        tables=messaging,
        register_consumers=register,
        context=context,
    )
