from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path

import pytest

from studio_devstack.routes import ROUTES_RELATIVE_PATH, RouteTable, load_route_table

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def routes_file() -> Path:
    """The checkout's real route table."""
    return ROOT / ROUTES_RELATIVE_PATH


@pytest.fixture(scope="session")
def route_table(routes_file: Path) -> RouteTable:
    return load_route_table(routes_file)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A loopback port nothing listens on (distinct on every call)."""
    handed_out: set[int] = set()

    def pick() -> int:
        while (port := _free_port()) in handed_out:
            pass
        handed_out.add(port)
        return port

    return pick


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Reply:
    conn = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.getheaders()
        return Reply(
            status=resp.status,
            headers={k.lower(): v for k, v in raw},
            body=resp.read(),
            raw_headers=raw,
        )
    finally:
        conn.close()


HttpRequest = Callable[..., Reply]


@pytest.fixture(scope="session")
def http() -> HttpRequest:
    """`http(port, method, path, headers=None, body=b"")` against 127.0.0.1."""
    return request
