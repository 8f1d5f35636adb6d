from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, FastAPI

from studio_common.access import Access, access
from studio_common.auth import OptionalUser
from studio_common.db import SessionDep
from studio_common.errors import PROBLEM_CONTENT_TYPE, RATE_LIMITED
from studio_common.openapi import PROBLEM_REF, install_problem_openapi
from studio_common.schemas import RequestModel


class ThingIn(RequestModel):
    name: str
    count: int


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_openapi(app)
    router = APIRouter(prefix="/api")

    @router.get("/open", **access(Access.public))
    async def open_route() -> dict[str, str]:
        return {}

    @router.get("/open/{thing_id}", **access(Access.public))
    async def open_thing(thing_id: uuid.UUID, user: OptionalUser) -> dict[str, str]:
        return {}

    @router.get("/me", **access(Access.user))
    async def me() -> dict[str, str]:
        return {}

    @router.post("/admin/things", responses=RATE_LIMITED, **access(Access.editor))
    async def create(data: ThingIn, session: SessionDep) -> dict[str, str]:
        return {}

    @router.get(
        "/users/{user_id}/things",
        responses={409: {"description": "Its own reason"}},
        **access(Access.self_or_admin, owner="user_id"),
    )
    async def things(user_id: str, page: int = 1) -> dict[str, str]:
        return {}

    app.include_router(router)
    return app


def statuses(document: dict[str, Any], method: str, path: str) -> list[int]:
    responses = document["paths"][path][method]["responses"]
    return sorted(int(code) for code in responses if int(code) >= 400)


def test_statuses_follow_from_access_parameters_body_and_dependencies():
    document = build_app().openapi()
    assert statuses(document, "get", "/api/open") == []
    # An optional caller is still checked: a bad token is a 401.
    assert statuses(document, "get", "/api/open/{thing_id}") == [401, 404, 422, 503]
    assert statuses(document, "get", "/api/me") == [401, 503]
    assert statuses(document, "post", "/api/admin/things") == [400, 401, 403, 409, 422, 429, 503]
    assert statuses(document, "get", "/api/users/{user_id}/things") == [
        401,
        403,
        404,
        409,
        422,
        503,
    ]


def test_every_problem_response_is_problem_json_with_the_problem_schema():
    document = build_app().openapi()
    schemas = document["components"]["schemas"]
    assert {"type", "title", "status"} <= set(schemas["Problem"]["required"])
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    for item in document["paths"].values():
        for operation in item.values():
            for code, response in operation["responses"].items():
                if int(code) < 400:
                    continue
                assert response["content"] == {
                    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}
                }, code
                assert response["description"]
    things = document["paths"]["/api/users/{user_id}/things"]["get"]["responses"]
    assert things["409"]["description"] == "Its own reason"
    created = document["paths"]["/api/admin/things"]["post"]["responses"]
    assert "Retry-After" in created["429"]["headers"]
    assert "Retry-After" in created["503"]["headers"]
    assert "WWW-Authenticate" in created["401"]["headers"]


def test_a_route_added_later_is_declared_too():
    app = build_app()
    app.openapi()

    @app.get("/api/late/{late_id}", **access(Access.admin))
    async def late(late_id: int) -> dict[str, str]:
        return {}

    assert statuses(app.openapi(), "get", "/api/late/{late_id}") == [401, 403, 404, 422, 503]
