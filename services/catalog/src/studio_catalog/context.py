"""What catalog builds on top of the common runtime, typed for its routes."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from studio_catalog.reads import TitleLists
from studio_common.app import runtime_of


@dataclass(frozen=True, slots=True)
class CatalogContext:
    # Title lists and searches, on a pool of their own (studio_catalog.reads).
    lists: TitleLists


def lists_of(request: Request) -> TitleLists:
    ctx = runtime_of(request).context
    if not isinstance(ctx, CatalogContext):
        raise TypeError(f"the service context is {type(ctx).__name__}, not CatalogContext")
    return ctx.lists
