"""The HTTP client: JSON in and out, problem+json turned into :class:`ApiError`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from studio_cli.errors import ApiError, CliError, Exit

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# 429 and 503 carry Retry-After: a short wait is retried, a long one reported.
RETRIES = 3
MAX_RETRY_AFTER = 10.0
IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE"}


def retry_after(response: httpx.Response, method: str) -> float | None:
    """Seconds to wait before the same request again, or None to give up on it.

    A 429 means the request was not processed, so any method may be repeated;
    after a 503 only an idempotent one."""
    if response.status_code not in (429, 503):
        return None
    if response.status_code == 503 and method not in IDEMPOTENT:
        return None
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER else None


def problem_from_response(response: httpx.Response) -> ApiError:
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("title"), str):
        detail = body.get("detail")
        errors = body.get("errors")
        return ApiError(
            status,
            body["title"],
            detail if isinstance(detail, str) else None,
            body.get("type") if isinstance(body.get("type"), str) else None,
            errors if isinstance(errors, list) else None,
        )
    reason = response.reason_phrase or "error"
    text = response.text.strip()[:300] if response.content else None
    return ApiError(status, f"HTTP {status} {reason}", text or None)


class Api:
    """One base URL, one optional bearer token."""

    def __init__(
        self, base_url: str, token: str | None = None, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "studio-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._authenticated = token is not None
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=TIMEOUT, transport=transport
        )
        self.sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        expect_json: bool = True,
    ) -> Any:
        try:
            response = self.client.request(method, path, json=json, params=params)
            for _ in range(RETRIES):
                wait = retry_after(response, method)
                if wait is None:
                    break
                self.sleep(wait)
                response = self.client.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise CliError(
                "The stack did not answer in time",
                f"{method} {self.base_url}{path}",
                Exit.UNAVAILABLE,
            ) from exc
        except httpx.HTTPError as exc:
            raise CliError(
                f"Cannot reach {self.base_url}",
                f"{exc}. Is the stack running (make up)? Set --api or STUDIO_API_URL otherwise.",
                Exit.UNAVAILABLE,
            ) from exc
        if response.is_success:
            if not expect_json or response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise CliError(
                    "The stack sent a reply that is not JSON",
                    f"{method} {path}: {response.text[:200]}",
                    Exit.UNAVAILABLE,
                ) from exc
        error = problem_from_response(response)
        if error.status == 401:
            error.detail = (error.detail + " " if error.detail else "") + (
                "Sign in again: studio login --dev --role admin (or --token)."
                if self._authenticated
                else "Sign in first: studio login --dev --role admin (or --token)."
            )
        raise error

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path, expect_json=False)
