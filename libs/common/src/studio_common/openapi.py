"""Every operation's OpenAPI declares the problem responses it can give.

A schema-aware client (a generated SDK, schemathesis) sees each error status
with ``application/problem+json`` and the ``Problem`` schema instead of only
the success. The statuses follow from what a route is made of:

- a token check (``x-access`` other than public, or an optional caller on a
  public route): 401, and 503 for the issuer's keys;
- a role gate (``self-or-admin``, ``editor``, ``admin``): 403;
- path parameters: 404;
- parameters or a body: 422, and 400 for a body that cannot be parsed;
- the request's database session: 503, and 409 on writes (unique and
  foreign keys);

and whatever the route adds with ``responses=`` (429 through
``errors.RATE_LIMITED``, a public route's own 403, …), which gets the same
problem content. FastAPI's own 422 schema (``HTTPValidationError``) is
replaced: validation errors are problems here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from studio_common.access import ACCESS_EXTENSION, Access
from studio_common.auth import current_user, optional_user
from studio_common.db import session_dependency
from studio_common.errors import PROBLEM_CONTENT_TYPE, Problem

PROBLEM_SCHEMA = "Problem"
PROBLEM_REF = f"#/components/schemas/{PROBLEM_SCHEMA}"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
ROLE_GATED = {Access.self_or_admin.value, Access.editor.value, Access.admin.value}
# FastAPI's validation-error schemas, unused once 422 is a problem.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

DESCRIPTIONS = {
    400: "The request is malformed",
    401: "No valid bearer token (missing, malformed, expired or not trusted)",
    403: "The caller may not do this",
    404: "Not found",
    409: "Conflicts with the current state (e.g. a unique or foreign key)",
    413: "The request is too large",
    422: "A parameter or the body is invalid; `errors` says which",
    429: "Too many requests; retry after `Retry-After` seconds",
    503: "A dependency is unreachable; retry after `Retry-After` seconds",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}
HEADERS = {
    401: {
        "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}},
    },
    429: RETRY_AFTER,
    503: RETRY_AFTER,
}


def install_problem_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare each operation's problem responses."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    declared: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        # FastAPI caches the document, and builds a new one when routes change.
        document = generate()
        if not declared or declared[0] is not document:
            declare_problem_responses(document, app.routes)
            declared[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def inferred_statuses(route: Any, operation: dict[str, Any]) -> set[int]:
    """The problem statuses a route can answer, from its access, parameters and dependencies."""
    calls = set(_calls(route.dependant))
    access = (route.openapi_extra or {}).get(ACCESS_EXTENSION)
    authenticated = access != Access.public.value or optional_user in calls
    uses_database = session_dependency in calls
    parameters = operation.get("parameters", [])
    statuses: set[int] = set()
    if authenticated or current_user in calls:
        statuses |= {401, 503}  # 503: the issuer's keys cannot be fetched
    if access in ROLE_GATED:
        statuses.add(403)
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses.add(400)  # a body that is not UTF-8, or JSON nested too deep to parse
    if uses_database:
        statuses.add(503)
        if set(route.methods or ()) & WRITES:
            statuses.add(409)
    return statuses


def _problem_response(status: int, declared: dict[str, Any] | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": (declared or {}).get("description") or DESCRIPTIONS.get(status, "Error"),
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }
    headers = {**HEADERS.get(status, {}), **(declared or {}).get("headers", {})}
    if headers:
        response["headers"] = headers
    return response


def declare_problem_responses(document: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Add the problem responses of every operation to ``document``, in place."""
    # Route contexts, as FastAPI's own OpenAPI sees them: an included router's
    # routes with their prefix and the router's dependencies.
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        item = document.get("paths", {}).get(route.path_format, {})
        for method in route.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in sorted(declared | inferred_statuses(route, operation)):
                responses[str(status)] = _problem_response(status, responses.get(str(status)))
            operation["responses"] = dict(sorted(responses.items()))

    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas[PROBLEM_SCHEMA] = problem
    for name in FASTAPI_VALIDATION_SCHEMAS:  # HTTPValidationError refers to ValidationError
        if f'"#/components/schemas/{name}"' not in json.dumps(document):
            schemas.pop(name, None)
