"""The gateway serves the demo player (web/player) with its security headers, and
every API route still reaches its service."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from studio_devstack.backing import wait_for_tcp
from studio_devstack.gateway import (
    GatewayOptions,
    clerk_frontend_host,
    content_security_policy,
    find_nginx,
    nginx_command,
    render_nginx_conf,
    write_nginx_conf,
)
from studio_devstack.routes import RouteTable

ROOT = Path(__file__).resolve().parents[3]
CLERK_KEY = "pk_test_" + base64.b64encode(b"sweet-owl-12.clerk.accounts.dev$").decode().rstrip("=")


def _options(tmp_path: Path, **overrides: object) -> GatewayOptions:
    defaults: dict[str, object] = {
        "runtime_dir": tmp_path / "gateway",
        "player_dir": ROOT / "web" / "player",
    }
    return GatewayOptions(**{**defaults, **overrides})  # type: ignore[arg-type]


def test_csp_allows_no_inline_code() -> None:
    csp = content_security_policy()
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "blob:" in directives["worker-src"]  # hls.js
    assert "blob:" in directives["media-src"]  # MediaSource
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


def test_a_clerk_key_adds_its_frontend_api_only() -> None:
    assert clerk_frontend_host(CLERK_KEY) == "sweet-owl-12.clerk.accounts.dev"
    csp = content_security_policy(CLERK_KEY)
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    host = "https://sweet-owl-12.clerk.accounts.dev"
    assert directives["script-src"] == f"'self' {host}"
    assert directives["connect-src"] == f"'self' {host}"
    assert directives["frame-src"] == host
    assert "unsafe-inline" not in csp
    for bad in ("sk_test_abc", "pk_test_", "pk_test_" + base64.b64encode(b"a;b$").decode()):
        with pytest.raises(ValueError, match="publishable key"):
            clerk_frontend_host(bad)


def test_config_serves_the_player_without_shadowing_routes(
    route_table: RouteTable, tmp_path: Path
) -> None:
    conf = render_nginx_conf(route_table, _options(tmp_path))
    player = (ROOT / "web" / "player").resolve()
    assert "location = / {" in conf
    assert f"root {player};" in conf
    assert "try_files /index.html =404;" in conf
    assert f"alias {player}/;" in conf
    assert "location ^~ /player/ {" in conf
    assert 'add_header Content-Security-Policy "default-src' in conf
    assert "add_header Strict-Transport-Security $studio_hsts always;" in conf
    assert 'return 200 \'{"auth":"dev","clerkPublishableKey":null}\';' in conf
    for route in route_table.routes:  # no route lives under the player's paths
        assert not route.path.startswith("/player")
    without = render_nginx_conf(route_table, _options(tmp_path, player_dir=None))
    assert "location = / {" not in without
    assert "/player/" not in without


def test_clerk_mode_config(route_table: RouteTable, tmp_path: Path) -> None:
    conf = render_nginx_conf(route_table, _options(tmp_path, clerk_publishable_key=CLERK_KEY))
    assert f'"auth":"clerk","clerkPublishableKey":"{CLERK_KEY}"' in conf
    assert "https://sweet-owl-12.clerk.accounts.dev" in conf
    with pytest.raises(ValueError, match="publishable key"):
        render_nginx_conf(route_table, _options(tmp_path, clerk_publishable_key="pk_live_'x"))


# ------------------------------------------------------------------ a real nginx


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"service": "catalog", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Gateway:
    port: int


@pytest.fixture(scope="module")
def gateway(
    route_table: RouteTable, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Gateway]:
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    tmp_path = tmp_path_factory.mktemp("player-gateway")
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=backend.serve_forever, args=(0.05,), daemon=True).start()
    ports = {s.name: free_port() for s in route_table.services}
    ports["catalog"] = backend.server_address[1]
    options = _options(tmp_path, listen_port=free_port())
    write_nginx_conf(route_table.with_ports(ports), options)
    proc = subprocess.Popen(
        nginx_command(nginx, options.runtime_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        if not wait_for_tcp("127.0.0.1", options.listen_port, timeout=10):
            proc.kill()
            pytest.fail(f"nginx did not start: {(options.runtime_dir / 'error.log').read_text()}")
        yield Gateway(options.listen_port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        backend.shutdown()
        backend.server_close()


SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-opener-policy",
)


def test_root_serves_index_html_with_security_headers(gateway: Gateway, http) -> None:
    reply = http(gateway.port, "GET", "/")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.body == (ROOT / "web" / "player" / "index.html").read_bytes()
    for name in SECURITY_HEADERS:
        assert reply.headers.get(name), name
    assert "unsafe-inline" not in reply.headers["content-security-policy"]
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["cache-control"] == "no-cache"
    # Plain HTTP: no HSTS (it is sent over TLS only).
    assert "strict-transport-security" not in reply.headers


def test_player_files_have_their_types(gateway: Gateway, http) -> None:
    for path, mime in (
        ("/player/app.js", "application/javascript"),
        ("/player/style.css", "text/css"),
        ("/player/vendor/hls.min.js", "application/javascript"),
        ("/player/config.json", "application/json"),
    ):
        reply = http(gateway.port, "GET", path)
        assert reply.status == 200, path
        assert reply.headers["content-type"].startswith(mime), path
        assert reply.headers.get("content-security-policy"), path
    config = http(gateway.port, "GET", "/player/config.json").json()
    assert config == {"auth": "dev", "clerkPublishableKey": None}


def test_missing_files_are_problems(gateway: Gateway, http) -> None:
    for path in ("/player/nope.js", "/index.html", "/nope"):
        reply = http(gateway.port, "GET", path)
        assert reply.status == 404, path
        assert reply.headers["content-type"] == "application/problem+json", path
        assert reply.json()["type"] == "urn:studio:problem:not-found"
        assert reply.headers.get("content-security-policy"), path


def test_api_is_still_routed(gateway: Gateway, http) -> None:
    reply = http(gateway.port, "GET", "/api/titles?q=x")
    assert reply.status == 200
    assert reply.json() == {"service": "catalog", "path": "/api/titles?q=x"}
    assert reply.headers.get("content-security-policy")
    down = http(gateway.port, "GET", "/api/me")  # identity is not running here
    assert down.status == 502
    assert down.json()["type"] == "urn:studio:problem:unavailable"
