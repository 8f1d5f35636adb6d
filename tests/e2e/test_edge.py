"""The edge of the stack as `make up` runs it: the gateway's own errors are
problems, a large valid body gets through, no answer names a forged Host, and
authenticated answers are not cached."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from http.client import HTTPResponse
from urllib.parse import urlsplit

import httpx
import pytest
from e2e_stack import Stack


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


def raw(stack: Stack, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Bytes as a hostile client sends them (http clients refuse to)."""
    url = urlsplit(stack.gateway_url)
    with socket.create_connection((url.hostname, url.port or 80), timeout=10) as sock:
        sock.sendall(request)
        reply = HTTPResponse(sock)
        reply.begin()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + b"a" * 100 * 1024
            + b"\r\n\r\n",
            431,
        ),
        (
            b"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
            b"Authorization: Bearer b\r\n\r\n",
            400,
        ),
        (b"GET /api/titles/%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
    ids=["100 KB Authorization", "two Authorization headers", "NUL in the path", "above root"],
)
def test_the_gateways_own_errors_are_problems(stack: Stack, request_bytes: bytes, status: int):
    got, headers, body = raw(stack, request_bytes)
    assert got == status, body[:300]
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"].startswith("urn:studio:problem:")


def test_a_10000_character_japanese_synopsis_is_stored(stack: Stack, http: httpx.Client):
    """~30 KB of JSON: more than nginx keeps in memory, so the workers buffer it on disk."""
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    synopsis = ("星の運び屋が夜空を渡る" * 1000)[:10_000]
    body = {"slug": slug, "name": "長い物語", "type": "series", "synopsis": synopsis}
    assert len(json.dumps(body, ensure_ascii=False).encode()) > 29_000
    r = http.post("/api/admin/titles", json=body, headers=stack.headers("admin"))
    assert r.status_code == 201, r.text[:300]
    assert http.get(f"/api/titles/{slug}").json()["synopsis"] == synopsis


def test_no_redirect_or_url_names_a_forged_host(stack: Stack, http: httpx.Client):
    r = http.get("/api/titles/", headers={"Host": "evil.example"})
    assert "evil.example" not in r.headers.get("location", "")
    assert "evil.example" not in r.text


@pytest.mark.parametrize(
    "path", ["/api/me", "/api/admin/users", "/api/users/me/watchlist", "/api/me/continue-watching"]
)
def test_authenticated_answers_are_not_cached(stack: Stack, http: httpx.Client, path: str):
    r = http.get(path, headers=stack.headers("admin"))
    assert r.status_code == 200, r.text[:300]
    assert r.headers["cache-control"] == "no-store"
    assert "Authorization" in r.headers["vary"]
