"""Paged lists: the query parameters every list endpoint takes, and the envelope it returns.

    @router.get("/things", response_model=Page[ThingOut])
    async def list_things(paging: Paging, session: SessionDep) -> Page[ThingOut]:
        items, total = await repo.list_page(offset=paging.offset, limit=paging.size)
        return Page.of([ThingOut.model_validate(i) for i in items], paging, total)

``pageSize`` is bounded by the service's ``max_page_size`` setting; a larger
one is a 422 problem pointing at ``query.pageSize``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from studio_common.errors import ValidationFailed

T = TypeVar("T")

MAX_PAGE_NUMBER = 100_000


@dataclass(frozen=True, slots=True)
class PageParams:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


async def page_params(
    request: Request,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE_NUMBER, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, description="Items per page")] = 20,
) -> PageParams:
    max_size = int(request.app.state.runtime.settings.max_page_size)
    if page_size > max_size:
        raise ValidationFailed(
            f"pageSize may be at most {max_size}.",
            extra={
                "errors": [
                    {
                        "pointer": "query.pageSize",
                        "message": f"at most {max_size}",
                        "code": "less_than_equal",
                    }
                ]
            },
        )
    return PageParams(number=page, size=page_size)


Paging = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    items: list[T]
    page: int
    page_size: int
    total: int
    total_pages: int
    # True when counting stopped at a cap: there are at least `total` matches.
    total_capped: bool = False

    @classmethod
    def of(cls, items: list[T], params: PageParams, total: int, *, capped: bool = False) -> Page[T]:
        return cls(
            items=items,
            page=params.number,
            page_size=params.size,
            total=total,
            total_pages=math.ceil(total / params.size) if total else 0,
            total_capped=capped,
        )
