"""RFC 9457 problem details.

Every error a service returns is ``application/problem+json`` with a stable
``type`` URI (``urn:studio:problem:<slug>``) that clients can switch on; the
``title`` is fixed per type and ``detail`` explains this occurrence.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import ReadTimeoutError as BotoReadTimeoutError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from studio_common.telemetry import report_exception

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:studio:problem:"

log = logging.getLogger("studio.errors")


def problem_type(slug: str) -> str:
    return f"{TYPE_PREFIX}{slug}"


class ProblemError(Exception):
    """Base of every error that maps to a problem+json response."""

    status: int = 500
    slug: str = "internal"
    title: str = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def to_body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(ProblemError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(ProblemError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="studio"'}
        if detail:
            headers["WWW-Authenticate"] += ', error="invalid_token"'
        super().__init__(detail, headers=headers, **kw)


class Forbidden(ProblemError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(ProblemError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ProblemError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class ValidationFailed(ProblemError):
    status, slug, title = 422, "validation", "Request validation failed"


class TooManyRequests(ProblemError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **kw: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))}, **kw)


class ServiceUnavailable(ProblemError):
    status, slug, title = 503, "unavailable", "Service unavailable"


_STATUS_TO_ERROR: dict[int, type[ProblemError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        ValidationFailed,
        TooManyRequests,
        ServiceUnavailable,
    )
}


class FieldProblem(BaseModel):
    pointer: str = Field(description="Where the invalid value is, e.g. `body.seasonId`")
    message: str
    code: str = Field(description="A stable code of what is wrong, e.g. `int_type`")


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="`urn:studio:problem:<slug>`, stable: switch on this")
    title: str = Field(description="Fixed per type")
    status: int
    detail: str | None = Field(default=None, description="This occurrence, for people")
    instance: str | None = Field(default=None, description="The request path")
    errors: list[FieldProblem] | None = Field(
        default=None, description="Validation problems (422): one per invalid value"
    )
    constraint: str | None = Field(
        default=None, description="The database constraint a 409 or 422 comes from"
    )


# For a route's ``responses=``: the problems that the shared machinery cannot
# infer from its declaration (studio_common.openapi adds the problem schema).
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests from this caller; retry after `Retry-After` seconds"}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "A dependency is unreachable; retry after `Retry-After` seconds"}
}


def problem_response(error: ProblemError, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        error.to_body(instance),
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        out.append(
            {
                # "body.seasonId" reads better than ["body", "seasonId"] in a UI.
                "pointer": ".".join(str(p) for p in err.get("loc", ())),
                "message": err.get("msg", ""),
                "code": err.get("type", ""),
            }
        )
    return out


# Postgres SQLSTATEs that mean "the client asked for something impossible".
_CONFLICT_STATES = {"23505": "already exists", "23503": "refers to something that does not exist"}
# 22021: a character the database encoding cannot hold, i.e. NUL in text.
_BAD_INPUT_STATES = {"23514", "22001", "22003", "22007", "22021", "22P02", "23502"}
# The database is going away, starting up or full: worth retrying shortly.
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300"}
DATABASE = "The database"
STORAGE = "Object storage"
# asyncpg's words for a connection the server dropped: closed under a query, or
# left mid-protocol ("cannot switch to state 12; another operation is in
# progress", an InternalClientError). InterfaceError also covers client bugs
# (wrong argument counts), so the message decides, not the class.
_LOST_CONNECTION = (
    "connection is closed",
    "connection was closed",
    # "another operation is in progress", "another operation (2) is in progress"
    "another operation",
)
_DRIVER_CLIENT_ERRORS = (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` (or the driver error under it) says the database
    connection is gone: an outage, to be answered 503."""
    seen: BaseException | None = exc
    for _ in range(5):  # the wrapper chain is short: SQLAlchemy, its adapter, asyncpg
        if seen is None:
            return False
        if isinstance(seen, _DRIVER_CLIENT_ERRORS) and any(
            words in str(seen) for words in _LOST_CONNECTION
        ):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database is away (refused, restarting, the
    connection dropped, the pool exhausted), not that the statement was wrong:
    what the API answers 503 and what an event consumer waits out."""
    if isinstance(exc, ConnectionError | SQLAlchemyTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or connection_lost(exc):
            return True
        state = _sqlstate(exc)
        return state is not None and (state in _UNAVAILABLE_STATES or state.startswith("08"))
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None)
        return bool(state) and (state in _UNAVAILABLE_STATES or str(state).startswith("08"))
    return connection_lost(exc)


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None)
        if code:
            return str(code)
    cause = getattr(orig, "__cause__", None)
    code = getattr(cause, "sqlstate", None)
    return str(code) if code else None


def _constraint_name(exc: DBAPIError) -> str | None:
    cause = getattr(exc.orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None)
    return str(name) if name else None


def _unavailable(request: Request, reason: str, what: str = DATABASE) -> JSONResponse:
    # An outage, not a bug: no traceback, and the client may retry.
    log.warning("%s unavailable: %s", what, reason[:200])
    error = ServiceUnavailable(
        f"{what} is not reachable; try again shortly.", headers={"Retry-After": "1"}
    )
    return problem_response(error, request)


def _database_problem(
    state: str | None, constraint: str | None, request: Request, *, integrity: bool
) -> JSONResponse:
    extra = {"constraint": constraint} if constraint else {}
    if state is not None and (state in _UNAVAILABLE_STATES or state.startswith("08")):
        return _unavailable(request, f"SQLSTATE {state}")
    if integrity and state in _CONFLICT_STATES:
        return problem_response(
            Conflict(f"The resource {_CONFLICT_STATES[state]}.", extra=extra), request
        )
    if state in _BAD_INPUT_STATES:
        return problem_response(
            ValidationFailed("A value is out of range or malformed.", extra=extra), request
        )
    log.exception("database error", extra={"sqlstate": state})
    return problem_response(ProblemError("An unexpected database error occurred."), request)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = ValidationFailed(
            "One or more fields are invalid.", extra={"errors": _validation_errors(exc)}
        )
        return problem_response(err, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = _STATUS_TO_ERROR.get(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else None
        if cls is None:
            err: ProblemError = ProblemError(detail)
            err.status = exc.status_code
            err.slug = f"http-{exc.status_code}"
            err.title = detail or "HTTP error"
        else:
            err = cls(detail if detail and detail != cls.title else None)
        err.headers.update(dict(exc.headers or {}))
        return problem_response(err, request)

    @app.exception_handler(DBAPIError)
    async def _db(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated or connection_lost(exc):
            return _unavailable(request, f"connection lost: {exc.orig!r}")
        return _database_problem(
            _sqlstate(exc),
            _constraint_name(exc),
            request,
            integrity=isinstance(exc, IntegrityError),
        )

    # Refused or reset connections (the database or another peer is down) and
    # a connection pool that stayed exhausted for its whole timeout.
    @app.exception_handler(ConnectionError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _no_connection(request: Request, exc: Exception) -> JSONResponse:
        return _unavailable(request, repr(exc))

    # S3 unreachable or overloaded (connection failures and timeouts, or its own
    # 5xx answers) is an outage of the same kind; other S3 errors are bugs.
    @app.exception_handler(BotoConnectionError)
    @app.exception_handler(BotoReadTimeoutError)
    async def _storage_down(request: Request, exc: Exception) -> JSONResponse:
        return _unavailable(request, repr(exc), STORAGE)

    @app.exception_handler(ClientError)
    async def _storage_error(request: Request, exc: ClientError) -> JSONResponse:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500:
            return _unavailable(request, repr(exc), STORAGE)
        log.exception("storage error", extra={"code": exc.response.get("Error", {}).get("Code")})
        report_exception(exc)
        return problem_response(ProblemError("An unexpected storage error occurred."), request)

    # The same errors raised by asyncpg itself, where a hot read runs on the
    # driver (studio_common.db.DriverQuery).
    @app.exception_handler(asyncpg.PostgresError)
    async def _driver(request: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        state = getattr(exc, "sqlstate", None)
        return _database_problem(
            state,
            getattr(exc, "constraint_name", None),
            request,
            integrity=bool(state and state.startswith("23")),
        )

    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(asyncpg.exceptions.InternalClientError)
    async def _driver_client(request: Request, exc: Exception) -> JSONResponse:
        if connection_lost(exc):
            return _unavailable(request, f"connection lost: {exc!r}")
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        report_exception(exc)
        return problem_response(ProblemError("An unexpected error occurred."), request)
