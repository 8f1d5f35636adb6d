"""Every operation of every service against every kind of caller, and against
hostile input (at the end of this module: never a 5xx; lax booleans and
numbers are 422s), and every status seen is declared in the operation's OpenAPI.

The operations come from each service's own app at run time (its OpenAPI
document), so a route added later is in the matrix without anyone listing it.
Each must declare ``x-access`` (``studio_common.access``); then each service
runs with its real lifespan against a migrated database, and every operation
is called as anonymous, viewer, another user, the owner, editor and admin:

============== =========== ========== =========== ========= ========= =========
x-access       anonymous   viewer     other user  owner     editor    admin
============== =========== ========== =========== ========= ========= =========
public         passes      passes     ·           ·         passes    passes
user           401         passes     ·           ·         passes    passes
self-or-admin  401         ·          403         passes    403       passes
editor         401         403        ·           ·         passes    passes
admin          401         403        ·           ·         403       passes
============== =========== ========== =========== ========= ========= =========

"Passes" means authorization let the request through: the status is neither
401 nor 403 and below 500 (a 404 or 422 for the made-up ids and the ``{}``
body is expected). Path parameters get fresh UUIDs; the owner parameter of a
self-or-admin route gets the owner's user id, announced as identity does.

A public route may still check a capability of its own (a signed playback URL,
a webhook signature) and refuse with its own problem type: a 403 there is
accepted when it is not the generic ``forbidden`` and an admin gets the same
answer as an anonymous caller, i.e. the answer does not depend on who calls.
"""

from __future__ import annotations

import importlib
import inspect
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from studio_common.access import ACCESS_EXTENSION, OWNER_EXTENSION, Access
from studio_common.events import Envelope, UserCreatedV1, subject_for
from studio_common.migrations import upgrade
from studio_common.settings import ServiceSettings
from studio_common.testing.issuer import TestIssuer
from studio_common.testing.jetstream import wait_until
from studio_common.testing.plugin import serve_app
from studio_common.testing.s3 import s3_client

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["catalog", "identity", "media", "transcoder", "playback"]
# Routes every service gets from libs/common, for probes and scrapers.
INFRASTRUCTURE = {"/healthz", "/readyz", "/metrics"}
# Run identity as in development, so its development-only routes are in the matrix too.
ENVIRONMENT = {"identity": "development"}
METHODS = ("get", "put", "post", "delete", "patch")
WITH_BODY = {"PUT", "POST", "PATCH"}

UNAUTHORIZED = "urn:studio:problem:unauthorized"
FORBIDDEN = "urn:studio:problem:forbidden"


def settings_class(name: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"studio_{name}.config")
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, ServiceSettings)
        and obj is not ServiceSettings
        and obj.__module__ == module.__name__
    ]
    assert len(found) == 1, f"studio_{name}.config should define one settings class: {found}"
    return found[0]


def build_app(name: str, **settings: Any) -> FastAPI:
    main = importlib.import_module(f"studio_{name}.main")
    # Over the shared test settings too: the running apps are the documented ones.
    settings["environment"] = ENVIRONMENT.get(name, settings.get("environment", "test"))
    app: FastAPI = main.create_app(settings_class(name)(**settings))
    return app


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str
    access: str | None
    owner: str | None = None
    path_params: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def operations_of(name: str) -> list[Operation]:
    ops = []
    for path, item in build_app(name).openapi()["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = tuple(p["name"] for p in op.get("parameters", []) if p.get("in") == "path")
            ops.append(
                Operation(
                    service=name,
                    method=method.upper(),
                    path=path,
                    access=op.get(ACCESS_EXTENSION),
                    owner=op.get(OWNER_EXTENSION),
                    path_params=params,
                )
            )
    return ops


def api_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, inside included routers too (FastAPI
    keeps an included router as one entry of `app.routes`)."""
    out: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append((prefix + route.path, route))
        elif hasattr(route, "original_router"):
            inner = prefix + (getattr(route.include_context, "prefix", "") or "")
            out += api_routes(route.original_router.routes, inner)
    return out


def undeclared_routes(name: str) -> list[str]:
    """Routes without x-access, including those left out of the OpenAPI document."""
    out = []
    for path, route in api_routes(build_app(name).routes):
        if path in INFRASTRUCTURE:
            continue
        if ACCESS_EXTENSION not in (route.openapi_extra or {}):
            out.append(f"{sorted(route.methods or ())} {path}")
    return out


OPERATIONS = [op for name in SERVICES for op in operations_of(name)]
DOCUMENTS = {name: build_app(name).openapi() for name in SERVICES}


# --- declarations --------------------------------------------------------------------------


def test_the_matrix_sees_the_known_routes():
    # Guards the parametrisation below against silently testing nothing.
    ids = {op.id for op in OPERATIONS}
    assert "identity GET /api/me" in ids
    assert "identity PUT /api/admin/users/{user_id}/role" in ids
    assert "identity POST /api/dev/token" in ids
    assert "catalog POST /api/admin/titles" in ids
    assert len(OPERATIONS) >= 15


@pytest.mark.parametrize("name", SERVICES)
def test_every_route_declares_its_access(name):
    missing = [op.id for op in OPERATIONS if op.service == name and op.access is None]
    assert missing == [], f"operations without {ACCESS_EXTENSION}: {missing}"
    assert undeclared_routes(name) == []
    valid = {a.value for a in Access}
    for op in (op for op in OPERATIONS if op.service == name):
        assert op.access in valid, op.id
        if op.access == Access.self_or_admin.value:
            assert op.owner in op.path_params, f"{op.id}: owner {op.owner!r} is no path parameter"


def _thread_pool_dependencies(dependant: Any, seen: set[int]) -> list[str]:
    found: list[str] = []
    for dep in dependant.dependencies:
        call = dep.call
        if call is not None and id(call) not in seen:
            seen.add(id(call))
            if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
                found.append(getattr(call, "__qualname__", repr(call)))
        found += _thread_pool_dependencies(dep, seen)
    return found


@pytest.mark.parametrize("name", SERVICES)
def test_no_dependency_runs_in_the_thread_pool(name):
    # FastAPI runs a plain `def` dependency in its thread pool: a thread hand-off
    # on every request of every route that uses it.
    found: list[str] = []
    routes = api_routes(build_app(name).routes)
    assert len(routes) > len(INFRASTRUCTURE)
    for path, route in routes:
        found += [f"{path}: {d}" for d in _thread_pool_dependencies(route.dependant, set())]
    assert found == []


def test_admin_paths_need_editor_or_admin():
    loose = [
        f"{op.id} ({op.access})"
        for op in OPERATIONS
        if op.path.startswith("/api/admin/") and op.access not in ("editor", "admin")
    ]
    assert loose == []


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ROLE_GATED = {"self-or-admin", "editor", "admin"}
# Rate-limited operations (each answers 429 past its limit), by id.
RATE_LIMITED = {
    "media POST /api/admin/presign",
    "media POST /api/admin/uploads",
    "media GET /api/episodes/{episode_id}/hls",
    "playback POST /api/playback",
}


def declared_statuses(op: Operation) -> set[int]:
    spec = DOCUMENTS[op.service]["paths"][op.path][op.method.lower()]
    return {int(code) for code in spec.get("responses", {}) if code.isdigit()}


def test_every_operation_declares_the_problems_it_can_give():
    failures = []
    for op in OPERATIONS:
        spec = DOCUMENTS[op.service]["paths"][op.path][op.method.lower()]
        expected = set()
        if op.access != "public":
            expected |= {401, 503}
        if op.access in ROLE_GATED:
            expected.add(403)
        if op.path_params:
            expected.add(404)
        if spec.get("parameters") or "requestBody" in spec:
            expected.add(422)
        if op.id in RATE_LIMITED:
            expected.add(429)
        missing = expected - declared_statuses(op)
        if missing:
            failures.append(f"{op.id}: {sorted(missing)} not declared")
        for code, response in spec["responses"].items():
            if int(code) >= 400 and response.get("content") != {
                "application/problem+json": {"schema": PROBLEM_REF}
            }:
                failures.append(f"{op.id}: {code} is not declared as a problem")
    assert failures == []
    for name, document in DOCUMENTS.items():
        assert "Problem" in document["components"]["schemas"], name
        assert "HTTPValidationError" not in document["components"]["schemas"], name


def test_the_rate_limited_operations_exist():
    assert {op.id for op in OPERATIONS} >= RATE_LIMITED


def undeclared(op: Operation, resp: httpx.Response) -> str | None:
    """A failure when an error status is not in the operation's OpenAPI responses."""
    if resp.status_code >= 400 and resp.status_code not in declared_statuses(op):
        return f"{resp.status_code} is not declared in the OpenAPI document"
    return None


# --- enforcement ---------------------------------------------------------------------------


@dataclass
class Running:
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)

    def client(self, name: str) -> httpx.AsyncClient:
        if name in self.errors:
            raise AssertionError(f"{name} did not start: {self.errors[name]!r}")
        return self.clients[name]


@pytest.fixture(scope="module")
def shared_settings(service_settings: dict[str, Any], s3_endpoint_url: str) -> dict[str, Any]:
    bucket = f"matrix-{uuid.uuid4().hex[:8]}"
    s3_client(s3_endpoint_url).create_bucket(Bucket=bucket)
    return {
        **service_settings,
        "s3_endpoint_url": s3_endpoint_url,
        "s3_bucket": bucket,
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test-secret",
    }


@pytest.fixture(scope="module")
async def running(
    shared_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    extra: dict[str, dict[str, Any]] = {
        # The development issuer's key stays out of the working tree.
        "identity": {"dev_key_path": tmp_path_factory.mktemp("matrix") / "jwt-key.pem"},
        # Required outside development.
        "media": {
            "playback_signing_key": "matrix-playback-signing-key-0123456789abcdef",
            "public_base_url": "http://media.test",
        },
    }
    out = Running()
    async with AsyncExitStack() as stack:
        for name in SERVICES:
            try:
                upgrade(ROOT / "services" / name, shared_settings["database_url"])
                app = build_app(name, **shared_settings, **extra.get(name, {}))
                out.clients[name] = await stack.enter_async_context(serve_app(app))
            except Exception as exc:  # reported by each of the service's tests
                out.errors[name] = exc
        yield out


@dataclass(frozen=True)
class Caller:
    name: str
    subject: str | None
    role: str | None

    def headers(self, issuer: TestIssuer) -> dict[str, str]:
        if self.subject is None:
            return {}
        return {"Authorization": f"Bearer {issuer.mint(self.subject, self.role)}"}


def callers() -> dict[str, Caller]:
    def sub(kind: str) -> str:
        return f"user_{kind}_{uuid.uuid4().hex[:12]}"

    return {
        "anonymous": Caller("anonymous", None, None),
        "viewer": Caller("viewer", sub("viewer"), "viewer"),
        "other user": Caller("other user", sub("other"), "viewer"),
        "owner": Caller("owner", sub("owner"), "viewer"),
        "editor": Caller("editor", sub("editor"), "editor"),
        "admin": Caller("admin", sub("admin"), "admin"),
    }


PASS = "passes"
# Per access level: what each caller must get. Callers not listed are not tried.
EXPECTED: dict[str, dict[str, int | str]] = {
    "public": {"anonymous": PASS, "viewer": PASS, "editor": PASS, "admin": PASS},
    "user": {"anonymous": 401, "viewer": PASS, "editor": PASS, "admin": PASS},
    "self-or-admin": {
        "anonymous": 401,
        "other user": 403,
        "owner": PASS,
        "editor": 403,
        "admin": PASS,
    },
    "editor": {"anonymous": 401, "viewer": 403, "editor": PASS, "admin": PASS},
    "admin": {"anonymous": 401, "viewer": 403, "editor": 403, "admin": PASS},
}


def url_for(op: Operation, owner_subject: str) -> str:
    url = op.path
    for param in op.path_params:
        value = owner_subject if param == op.owner else str(uuid.uuid4())
        url = url.replace(f"{{{param}}}", value).replace(f"{{{param}:path}}", value)
    return url


def problem_type(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


async def owner_id(
    op: Operation, running: Running, settings: dict[str, Any], issuer: TestIssuer, owner: Caller
) -> str:
    """A self-or-admin route names its user by identity's id (what /api/me returns):
    the owner's, announced as identity announces it, once the route's service knows it."""
    user_id = str(uuid.uuid4())
    envelope = Envelope.wrap(UserCreatedV1(user_id=user_id, clerk_id=owner.subject or ""))
    nc = await nats.connect(settings["nats_url"])
    try:
        await nc.jetstream().publish(
            subject_for(settings["event_subject_root"], envelope.type),
            envelope.model_dump_json(by_alias=True).encode(),
            stream=settings["event_stream"],
        )
    finally:
        await nc.close()
    client, url = running.client(op.service), url_for(op, user_id)
    admin = callers()["admin"].headers(issuer)

    async def known() -> bool:
        return (await client.request(op.method, url, headers=admin)).status_code != 404

    await wait_until(known, within=15)
    return user_id


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
async def test_access_is_enforced(
    op: Operation, running: Running, test_issuer: TestIssuer, shared_settings: dict[str, Any]
):
    assert op.access in EXPECTED, f"{op.id} declares no known access level"
    client = running.client(op.service)
    who = callers()
    url = url_for(op, who["owner"].subject or "")
    if op.owner is not None:
        url = url_for(op, await owner_id(op, running, shared_settings, test_issuer, who["owner"]))
    body: dict[str, Any] | None = {} if op.method in WITH_BODY else None

    got: dict[str, httpx.Response] = {}
    failures = []
    for caller_name, expected in EXPECTED[op.access].items():
        caller = who[caller_name]
        resp = await client.request(op.method, url, headers=caller.headers(test_issuer), json=body)
        got[caller_name] = resp
        status, kind = resp.status_code, problem_type(resp)
        if problem := undeclared(op, resp):
            failures.append(f"{caller_name}: {problem}")
        if expected == PASS:
            refused = status == 401 or (
                status == 403 and (op.access != "public" or kind == FORBIDDEN)
            )
            if refused or status >= 500:
                failures.append(f"{caller_name}: expected to pass, got {status} {resp.text[:200]}")
        elif status != expected or kind != (UNAUTHORIZED if expected == 401 else FORBIDDEN):
            failures.append(f"{caller_name}: expected {expected}, got {status} {resp.text[:200]}")
        elif resp.headers.get("content-type") != "application/problem+json":
            failures.append(f"{caller_name}: {status} is not problem+json")
        # What a token opened, or a route that needs one answered, is no cache's business.
        if (caller.subject is not None or op.access != "public") and (
            resp.headers.get("cache-control") != "no-store"
            or "authorization" not in resp.headers.get("vary", "").lower()
        ):
            failures.append(f"{caller_name}: {status} may be cached: {dict(resp.headers)}")
    if op.access == "public" and got["admin"].status_code != got["anonymous"].status_code:
        failures.append(
            f"a public route answers by caller: anonymous {got['anonymous'].status_code}, "
            f"admin {got['admin'].status_code}"
        )
    assert failures == [], f"{op.id} ({op.access}, {url}):\n" + "\n".join(failures)


# --- hostile input -------------------------------------------------------------------------
#
# Whatever a caller sends, the answer is never a 5xx: NUL bytes, huge values,
# malformed or deeply nested JSON, wrong types. Sent as an admin, whom every
# route lets through, so the input reaches the handlers.

HOSTILE_TEXT = ["a\x00b", "x" * 5000, "-1", "9" * 40, "../../etc/passwd", "%00", "null"]
# Percent-encoded for the path, where a raw NUL or slash would change the route.
HOSTILE_PATH = ["%00", "a" * 3000, "..%2F..%2Fetc", "-1", "null", "%F0%9F%8E%8C"]
NESTED = b"[" * 100_000 + b"]" * 100_000
HOSTILE_BODIES: list[bytes] = [b"{not json", b"[]", b'"text"', b"null", b"\xff\xfe\x00", NESTED]


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def _hostile_value(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    schema = _schema(document, schema)
    kind = schema.get("type")
    if kind == "integer":
        return 10**30
    if kind == "number":
        return 1e308
    if kind == "boolean":
        return "yes"
    if kind == "array":
        return ["a\x00b"]
    if kind == "object":
        return {"a\x00b": "a\x00b"}
    return "a\x00b"


def hostile_bodies(document: dict[str, Any], op: Operation) -> list[bytes]:
    """The fixed malformed bodies, plus the route's own fields filled with bad values."""
    spec = document["paths"][op.path][op.method.lower()].get("requestBody", {})
    schema = spec.get("content", {}).get("application/json", {}).get("schema")
    bodies = list(HOSTILE_BODIES)
    if schema is not None:
        properties = _schema(document, schema).get("properties", {})
        if properties:
            filled = {name: _hostile_value(document, s) for name, s in properties.items()}
            bodies.append(json.dumps(filled).encode())
            strings = {name: "a\x00b" for name in properties}
            bodies.append(json.dumps(strings).encode())
    return bodies


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
async def test_hostile_input_never_gets_a_5xx(
    op: Operation, running: Running, test_issuer: TestIssuer
):
    client = running.client(op.service)
    admin = callers()["admin"]
    headers = admin.headers(test_issuer)
    document = DOCUMENTS[op.service]
    spec = document["paths"][op.path][op.method.lower()]
    query = [p["name"] for p in spec.get("parameters", []) if p.get("in") == "query"]
    url = url_for(op, admin.subject or "")

    requests: list[tuple[str, dict[str, Any]]] = []
    for value in HOSTILE_PATH if op.path_params else ():
        hostile_url = op.path
        for param in op.path_params:
            hostile_url = hostile_url.replace(f"{{{param}}}", value)
            hostile_url = hostile_url.replace(f"{{{param}:path}}", value)
        requests.append((hostile_url, {}))
    for name in query:
        for value in HOSTILE_TEXT:
            requests.append((url, {"params": {name: value}}))
    if op.method in WITH_BODY:
        for body in hostile_bodies(document, op):
            content_headers = {"Content-Type": "application/json"}
            requests.append((url, {"content": body, "headers": content_headers}))

    failures = []
    for target, options in requests:
        extra_headers = options.pop("headers", {})
        resp = await client.request(
            op.method, target, headers={**headers, **extra_headers}, **options
        )
        sent = f"{target[:80]} {str(options)[:120]}"
        if resp.status_code >= 500:
            failures.append(f"{sent}: {resp.status_code} {resp.text[:200]}")
        elif resp.status_code >= 400 and not resp.headers.get("content-type", "").startswith(
            "application/problem+json"
        ):
            failures.append(f"{sent}: {resp.status_code} is not problem+json")
        elif missing := undeclared(op, resp):
            failures.append(f"{sent}: {missing}")
    assert failures == [], f"{op.id}:\n" + "\n".join(failures)


# --- lax input -----------------------------------------------------------------------------
#
# Booleans and numbers of a request body are JSON booleans and numbers: a
# string, a 0/1 or a boolean for a number is a 422 problem naming the field,
# never a value read into something else ({"public": "yes"} publishing).

LAX: dict[str, list[Any]] = {
    "boolean": ["yes", "true", "false", 1, 0],
    "integer": ["1000", True, False, 1.0, "1e3"],
    "number": ["1.5", True],
}
STRICT_CODES = {"bool_type", "int_type", "float_type"}


def lax_cases(
    document: dict[str, Any], schema: dict[str, Any], pointer: str
) -> list[tuple[Any, str]]:
    """(a value with one lax boolean or number in it, that value's pointer), for each
    boolean and number the schema has, in lists and nested objects too."""
    schema = _schema(document, schema)
    cases: list[tuple[Any, str]] = []
    for option in schema.get("anyOf", []):
        cases += lax_cases(document, option, pointer)
    kind = schema.get("type")
    if kind in LAX:
        cases += [(value, pointer) for value in LAX[kind]]
    elif kind == "array" and "items" in schema:
        for value, where in lax_cases(document, schema["items"], f"{pointer}.0"):
            cases.append(([value], where))
    for name, sub in schema.get("properties", {}).items():
        for value, where in lax_cases(document, sub, f"{pointer}.{name}"):
            cases.append(({name: value}, where))
    return cases


def body_schema(op: Operation) -> dict[str, Any] | None:
    spec = DOCUMENTS[op.service]["paths"][op.path][op.method.lower()].get("requestBody", {})
    schema: dict[str, Any] | None = (
        spec.get("content", {}).get("application/json", {}).get("schema")
    )
    return schema


LAX_OPERATIONS = [
    op
    for op in OPERATIONS
    if op.method in WITH_BODY
    and (schema := body_schema(op)) is not None
    and lax_cases(DOCUMENTS[op.service], schema, "body")
]


def test_the_lax_input_suite_sees_the_known_fields():
    ids = {op.id for op in LAX_OPERATIONS}
    assert "catalog PATCH /api/admin/episodes/{episode_id}" in ids
    assert "media POST /api/admin/presign" in ids
    assert "playback POST /api/playback" in ids


@pytest.mark.parametrize("op", LAX_OPERATIONS, ids=lambda op: op.id)
async def test_lax_booleans_and_numbers_are_422(
    op: Operation, running: Running, test_issuer: TestIssuer
):
    client = running.client(op.service)
    admin = callers()["admin"]
    headers = admin.headers(test_issuer)
    url = url_for(op, admin.subject or "")
    schema = body_schema(op)
    assert schema is not None
    failures = []
    for body, pointer in lax_cases(DOCUMENTS[op.service], schema, "body"):
        resp = await client.request(op.method, url, headers=headers, json=body)
        sent = json.dumps(body)[:120]
        if resp.status_code != 422:
            failures.append(f"{sent}: {resp.status_code} {resp.text[:200]}")
            continue
        codes = {e["pointer"]: e["code"] for e in resp.json().get("errors", [])}
        if resp.headers.get("content-type") != "application/problem+json":
            failures.append(f"{sent}: 422 is not problem+json")
        elif codes.get(pointer) not in STRICT_CODES:
            failures.append(f"{sent}: no type error at {pointer}: {codes}")
        elif missing := undeclared(op, resp):
            failures.append(f"{sent}: {missing}")
    assert failures == [], f"{op.id}:\n" + "\n".join(failures)
