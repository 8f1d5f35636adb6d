"""A real nginx, configured from the real route table, in front of small real
HTTP backends: routing, forwarded headers, request ids, CORS and problem bodies."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from studio_devstack.backing import wait_for_tcp
from studio_devstack.gateway import GatewayOptions, find_nginx, nginx_command, write_nginx_conf
from studio_devstack.routes import RouteTable

pytestmark = pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed")

ORIGIN = "http://player.test:3000"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with which service got it and what it saw."""

    service = "?"

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "service": self.service,
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_bytes": len(self.rfile.read(length)) if length else 0,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # Like the services: the request id comes back on the response.
        self.send_header("X-Request-ID", self.headers.get("X-Request-ID", "none"))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _echo

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Gateway:
    port: int
    runtime_dir: Path


@pytest.fixture(scope="module")
def gateway(
    route_table: RouteTable, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Gateway]:
    tmp_path = tmp_path_factory.mktemp("gateway")
    servers: list[ThreadingHTTPServer] = []
    ports: dict[str, int] = {}
    # media stays down on purpose: its routes show the 502 problem body.
    for service in route_table.services:
        if service.name == "media":
            ports["media"] = free_port()
            continue
        handler = type(f"{service.name}Handler", (EchoHandler,), {"service": service.name})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        ports[service.name] = server.server_address[1]

    options = GatewayOptions(
        runtime_dir=tmp_path / "gateway",
        listen_port=free_port(),
        cors_origins=(ORIGIN,),
        client_max_body_size="48k",
    )
    write_nginx_conf(route_table.with_ports(ports), options)
    nginx = find_nginx()
    assert nginx is not None
    proc = subprocess.Popen(
        nginx_command(nginx, options.runtime_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        if not wait_for_tcp("127.0.0.1", options.listen_port, timeout=10):
            proc.kill()
            output = proc.communicate()[0].decode()
            log = (options.runtime_dir / "error.log").read_text()
            pytest.fail(f"nginx did not start:\n{output}\n{log}")
        yield Gateway(port=options.listen_port, runtime_dir=options.runtime_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/episodes/x/hls", "media"),
        ("/api/episodes/x", "catalog"),
        ("/api/episodes", "catalog"),
        ("/api/episodes/x/hls/extra", "catalog"),
        ("/api/me", "identity"),
        ("/api/me/continue-watching", "playback"),
        ("/api/titles?genre=action&page=2", "catalog"),
        ("/api/titles/frieren", "catalog"),
        ("/api/admin/titles/1", "catalog"),
        ("/api/admin/users/7/role", "identity"),
        ("/api/admin/presign", "media"),
        ("/api/admin/jobs/3/retry", "transcoder"),
        ("/api/users/u1/watchlist", "playback"),
        ("/api/playback/ep1", "playback"),
        ("/.well-known/jwks.json", "identity"),
        ("/hls/t/season-1/ep-1/master.m3u8", "media"),
    ],
)
def test_routes_reach_their_service(gateway: Gateway, http, path: str, service: str) -> None:
    reply = http(gateway.port, "GET", path)
    if service == "media":  # not running in this fixture: the gateway says so
        assert reply.status == 502
        assert reply.json()["type"] == "urn:studio:problem:unavailable"
        return
    assert reply.status == 200
    seen = reply.json()
    assert seen["service"] == service
    assert seen["path"] == path, "the path and query reach the service unchanged"


def test_forwarded_headers_and_a_generated_request_id(gateway: Gateway, http) -> None:
    reply = http(gateway.port, "GET", "/api/titles", {"Host": "studio.test:8080"})
    seen = reply.json()["headers"]
    assert seen["host"] == "studio.test:8080"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    # The gateway is the edge: a client's own X-Forwarded-For does not reach the services.
    spoofed = http(gateway.port, "GET", "/api/titles", {"X-Forwarded-For": "203.0.113.9"})
    assert spoofed.json()["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert re.fullmatch(r"[0-9a-f]{32}", seen["x-request-id"])
    assert reply.headers["x-request-id"] == seen["x-request-id"]
    ids = [v for k, v in reply.raw_headers if k.lower() == "x-request-id"]
    assert ids == [seen["x-request-id"]], "one X-Request-ID on the response"


def test_a_plain_request_id_is_kept_and_an_odd_one_replaced(gateway: Gateway, http) -> None:
    kept = http(gateway.port, "GET", "/api/titles", {"X-Request-ID": "req-42.a:b"})
    assert kept.json()["headers"]["x-request-id"] == "req-42.a:b"
    assert kept.headers["x-request-id"] == "req-42.a:b"
    odd = http(gateway.port, "GET", "/api/titles", {"X-Request-ID": 'a"b <script>'})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.json()["headers"]["x-request-id"])


def test_security_headers_on_proxied_and_gateway_responses(gateway: Gateway, http) -> None:
    for path in ("/api/titles", "/api/nothing-here", "/api/episodes/1/hls"):
        reply = http(gateway.port, "GET", path)
        assert reply.headers["x-content-type-options"] == "nosniff", path
        assert reply.headers["x-frame-options"] == "DENY", path
        assert reply.headers["referrer-policy"] == "strict-origin-when-cross-origin", path
        assert "server" not in reply.headers or reply.headers["server"] == "nginx", path


def test_cors_preflight_from_a_player_origin(gateway: Gateway, http) -> None:
    reply = http(
        gateway.port,
        "OPTIONS",
        "/api/playback",
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert reply.status == 204
    assert reply.body == b""
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in reply.headers["access-control-allow-methods"]
    assert "Authorization" in reply.headers["access-control-allow-headers"]
    assert reply.headers["access-control-max-age"] == "600"
    assert reply.headers["vary"] == "Origin"


def test_cors_on_a_simple_request_exposes_headers(gateway: Gateway, http) -> None:
    reply = http(gateway.port, "GET", "/api/titles", {"Origin": ORIGIN})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Request-ID" in reply.headers["access-control-expose-headers"]
    assert "access-control-allow-methods" not in reply.headers, "only preflights list methods"


def test_other_origins_get_no_cors_grant(gateway: Gateway, http) -> None:
    preflight = http(
        gateway.port,
        "OPTIONS",
        "/api/playback",
        {"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
    )
    # Not answered by the gateway as a preflight: the service sees a plain OPTIONS.
    assert preflight.status == 200
    assert preflight.json()["service"] == "playback"
    assert "access-control-allow-origin" not in preflight.headers
    plain = http(gateway.port, "GET", "/api/titles", {"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in plain.headers
    assert "vary" not in plain.headers


@pytest.mark.parametrize(
    "path",
    ["/api/nothing-here", "/api/titlesx", "/", "/api/me/"[:-1] + "x", "/__studio/problem/400"],
)
def test_unknown_paths_get_a_problem_body(gateway: Gateway, http, path: str) -> None:
    reply = http(gateway.port, "GET", path, {"X-Request-ID": "trace-1"})
    assert reply.status == 404
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem == {
        "type": "urn:studio:problem:not-found",
        "title": "Not found",
        "status": 404,
        "detail": "No service serves this path.",
        "request_id": "trace-1",
    }


def test_oversized_bodies_get_a_problem_body(gateway: Gateway, http) -> None:
    small = http(gateway.port, "POST", "/api/playback", body=b"x" * 512)
    assert small.json()["body_bytes"] == 512
    big = http(gateway.port, "POST", "/api/playback", body=b"x" * 64 * 1024)
    assert big.status == 413
    assert big.json()["type"] == "urn:studio:problem:payload-too-large"


def test_access_log_is_one_json_object_per_request(gateway: Gateway, http) -> None:
    http(gateway.port, "GET", "/api/titles?q=a%22b", {"X-Request-ID": "log-check"})
    log = gateway.runtime_dir / "access.log"
    # nginx writes the line after the response has gone out.
    deadline = time.monotonic() + 5
    while True:
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        found = [e for e in entries if e["request_id"] == "log-check"]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(found) == 1
    entry = found[0]
    assert entry["status"] == 200
    assert entry["method"] == "GET"
    assert entry["uri"] == "/api/titles?q=a%22b"
    assert entry["upstream_status"] == "200"


def raw_request(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Bytes as a hostile client sends them, which http.client would refuse to."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        response = HTTPResponse(sock)
        response.begin()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()


@pytest.mark.parametrize(
    ("name", "request_bytes", "status", "slug"),
    [
        (
            "a 100 KB Authorization header",
            b"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + b"a" * 100 * 1024
            + b"\r\n\r\n",
            431,
            "headers-too-large",
        ),
        (
            "two Authorization headers",
            b"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
            b"Authorization: Bearer b\r\n\r\n",
            400,
            "bad-request",
        ),
        (
            "a NUL in the path",
            b"GET /api/titles/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "bad-request",
        ),
        (
            "a path above the root",
            b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "bad-request",
        ),
        (
            "a request line too long",
            b"GET /api/titles?q=" + b"a" * 20 * 1024 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "uri-too-long",
        ),
        (
            "a method nginx refuses",
            b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n",
            405,
            "method-not-allowed",
        ),
    ],
)
def test_the_gateways_own_errors_are_problems(
    gateway: Gateway, name: str, request_bytes: bytes, status: int, slug: str
) -> None:
    got, headers, body = raw_request(gateway.port, request_bytes)
    assert got == status, (name, body[:200])
    assert headers["content-type"] == "application/problem+json", name
    problem = json.loads(body)
    assert problem["type"] == f"urn:studio:problem:{slug}", name
    assert problem["status"] == status, name


def test_a_30_kb_json_body_reaches_the_service(gateway: Gateway, http) -> None:
    """Larger than nginx's in-memory buffer: the workers write it to the temp path."""
    synopsis = "星の運び屋が夜空を渡る。" * 834  # ~10,000 characters, ~30 KB of UTF-8
    body = json.dumps({"synopsis": synopsis}, ensure_ascii=False).encode()
    assert len(body) > 29_000
    reply = http(gateway.port, "POST", "/api/playback", {"Content-Type": "application/json"}, body)
    assert reply.status == 200, reply.body[:300]
    assert reply.json()["body_bytes"] == len(body)
