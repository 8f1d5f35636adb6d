"""What identity builds on top of the common runtime, typed for its routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from studio_common.app import context_dependency
from studio_identity.clerk import RoleSink
from studio_identity.config import IdentitySettings
from studio_identity.dev_limit import DevTokenLimiter
from studio_identity.keys import DevKeyStore
from studio_identity.roles import RoleWriter


@dataclass
class IdentityContext:
    settings: IdentitySettings
    role_sink: RoleSink
    role_writer: RoleWriter
    # The development issuer's keys; None where Clerk issues the tokens.
    dev_keys: DevKeyStore | None
    dev_token_limiter: DevTokenLimiter


IdentityDep = Annotated[IdentityContext, Depends(context_dependency(IdentityContext))]
