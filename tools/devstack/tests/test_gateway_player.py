"""The gateway serves the demo player (web/player) with its security headers, and
every API route still reaches its service."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from studio_devstack.backing import wait_for_tcp
from studio_devstack.gateway import (
    GatewayOptions,
    PlayerServerOptions,
    clerk_frontend_host,
    content_security_policy,
    find_nginx,
    nginx_command,
    player_clerk_origin_map,
    player_config,
    render_nginx_conf,
    render_player_nginx_conf,
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
    # WebAssembly only (the ASS renderer), never eval or inline code.
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "blob:" in directives["worker-src"]  # hls.js
    assert "blob:" in directives["media-src"]  # MediaSource
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp.replace("'wasm-unsafe-eval'", "")


def test_a_clerk_key_adds_its_frontend_api_only() -> None:
    assert clerk_frontend_host(CLERK_KEY) == "sweet-owl-12.clerk.accounts.dev"
    csp = content_security_policy(CLERK_KEY)
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    host = "https://sweet-owl-12.clerk.accounts.dev"
    assert directives["script-src"] == f"'self' 'wasm-unsafe-eval' {host}"
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
        # The ASS renderer: an ES module, its worker, WebAssembly (streamed
        # compilation needs the type) and the fonts.
        ("/player/vendor/jassub/jassub.js", "application/javascript"),
        ("/player/vendor/jassub/worker/worker.js", "application/javascript"),
        ("/player/vendor/jassub/wasm/jassub-worker.wasm", "application/wasm"),
        ("/player/vendor/jassub/default.woff2", "font/woff2"),
        ("/player/vendor/fonts/DroidSansFallback.woff2", "font/woff2"),
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


# --------------------------------------------- the player's own nginx (the chart's)


def _player_options(tmp_path: Path, **overrides: object) -> PlayerServerOptions:
    defaults: dict[str, object] = {
        "root": ROOT / "web" / "player",
        "config_dir": tmp_path / "config",
        "runtime_dir": tmp_path / "run",
    }
    return PlayerServerOptions(**{**defaults, **overrides})  # type: ignore[arg-type]


def _blocks(conf: str) -> dict[str, str]:
    """Each `location` block of a rendered config, by its opening line."""
    blocks: dict[str, str] = {}
    lines = conf.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("location "):
            indent = line[: len(line) - len(line.lstrip())]
            end = lines.index(indent + "}", i)
            blocks[line.strip()] = "\n".join(x.strip() for x in lines[i : end + 1])
    return blocks


def test_the_player_server_serves_what_the_gateway_does(
    route_table: RouteTable, tmp_path: Path
) -> None:
    gateway = render_nginx_conf(route_table, _options(tmp_path))
    player = render_player_nginx_conf(_player_options(tmp_path))
    gateway_blocks, player_blocks = _blocks(gateway), _blocks(player)
    for opening in ("location = / {", "location ^~ /player/ {", "location @problem_404 {"):
        assert player_blocks[opening] == gateway_blocks[opening], opening
    # Unclaimed paths: the same problem body.
    assert player_blocks["location / {"] == gateway_blocks["location / {"]
    # Every security header of the gateway, with the CSP's Clerk parts as variables.
    cors = ("Access-Control-", "Vary", "Content-Security-Policy")
    headers = [
        line.strip()
        for line in gateway.splitlines()
        if line.strip().startswith("add_header") and not any(c in line for c in cors)
    ]
    assert len(headers) == 7
    for header in headers:
        assert f"\n        {header}\n" in player, header
    for path in (str(tmp_path / "config" / "config.json"), str(tmp_path / "config" / "*.map")):
        assert path in player
    assert "proxy_pass" not in player


def test_the_player_server_csp_is_the_gateway_csp_once_filled_in(tmp_path: Path) -> None:
    player = render_player_nginx_conf(_player_options(tmp_path))
    (line,) = [x for x in player.splitlines() if "Content-Security-Policy" in x]
    template = line.split('"')[1]
    for key, origin in (("", ""), (CLERK_KEY, "https://sweet-owl-12.clerk.accounts.dev")):
        filled = template.replace("$studio_clerk_source", f" {origin}" if origin else "")
        filled = filled.replace("$studio_clerk_frame", origin or "'none'")
        assert filled == content_security_policy(key)
    assert player_clerk_origin_map(CLERK_KEY) == '"" "https://sweet-owl-12.clerk.accounts.dev";\n'
    with pytest.raises(ValueError, match="publishable key"):
        player_clerk_origin_map("pk_test_'x")


class PlayerServer:
    """The player's nginx over a config dir a test fills; `restart` rereads it (nginx
    reads the *.map file when it starts, as a new pod does)."""

    def __init__(self, nginx: str, tmp_path: Path, config_dir: Path, port: int) -> None:
        self.port = port
        self.config_dir = config_dir
        options = _player_options(tmp_path, config_dir=config_dir, listen=f"127.0.0.1:{port}")
        options.runtime_dir.mkdir(parents=True, exist_ok=True)
        self._conf = options.runtime_dir / "nginx.conf"
        self._conf.write_text(render_player_nginx_conf(options), encoding="utf-8")
        self._argv = [nginx, "-p", str(options.runtime_dir), "-c", str(self._conf)]
        self._argv += ["-e", "stderr", "-g", "daemon off;"]
        self._log = options.runtime_dir / "nginx.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(self._argv, stdout=log, stderr=log)
        if not wait_for_tcp("127.0.0.1", self.port, timeout=10):
            self._proc.kill()
            self._proc.wait(timeout=10)
            pytest.fail(f"nginx did not start: {self._log.read_text(encoding='utf-8')}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def player_server(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[PlayerServer]:
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    # Outside pytest's private tmp dir: nginx started as root reads files as nobody.
    config_dir = Path(tempfile.mkdtemp(prefix="studio-player-config-"))
    config_dir.chmod(0o755)
    server = PlayerServer(nginx, tmp_path, config_dir, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(config_dir)


def test_the_player_server_answers_like_the_gateway(player_server: PlayerServer, http) -> None:
    port = player_server.port
    page = http(port, "GET", "/")
    assert page.status == 200
    assert page.body == (ROOT / "web" / "player" / "index.html").read_bytes()
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    for name in SECURITY_HEADERS:
        assert page.headers.get(name), name
    assert page.headers["content-security-policy"] == content_security_policy()
    assert "strict-transport-security" not in page.headers
    for path, mime in (
        ("/player/app.js", "application/javascript"),
        ("/player/style.css", "text/css"),
        ("/player/vendor/hls.min.js", "application/javascript"),
        ("/player/vendor/jassub/wasm/jassub-worker-modern.wasm", "application/wasm"),
        ("/player/vendor/fonts/DroidSansFallback.woff2", "font/woff2"),
    ):
        reply = http(port, "GET", path)
        assert reply.status == 200, path
        assert reply.headers["content-type"].startswith(mime), path
        assert reply.headers["content-security-policy"] == content_security_policy(), path
    # No ConfigMap mounted: development sign-in.
    config = http(port, "GET", "/player/config.json")
    assert config.status == 200
    assert config.headers["content-type"] == "application/json"
    assert config.json() == player_config(_options(Path("/unused")))
    for path in ("/player/nope.js", "/index.html", "/api/titles", "/nope"):
        reply = http(port, "GET", path)
        assert reply.status == 404, path
        assert reply.headers["content-type"] == "application/problem+json", path
        assert reply.json()["type"] == "urn:studio:problem:not-found", path
        assert reply.headers["content-security-policy"] == content_security_policy(), path
    # Behind the ingress controller: its request id, and HSTS when it was reached over TLS.
    tls = http(port, "GET", "/", headers={"X-Forwarded-Proto": "https", "X-Request-ID": "abc-1"})
    assert tls.headers["strict-transport-security"].startswith("max-age=")
    assert tls.headers["x-request-id"] == "abc-1"


def test_the_player_server_takes_its_clerk_key_from_the_config_dir(
    player_server: PlayerServer, http
) -> None:
    options = _options(Path("/unused"), clerk_publishable_key=CLERK_KEY)
    config = json.dumps(player_config(options))
    (player_server.config_dir / "config.json").write_text(config, encoding="utf-8")
    (player_server.config_dir / "clerk-origin.map").write_text(
        player_clerk_origin_map(CLERK_KEY), encoding="utf-8"
    )
    player_server.restart()
    for path in ("/", "/player/app.js", "/nope"):
        reply = http(player_server.port, "GET", path)
        assert reply.headers["content-security-policy"] == content_security_policy(CLERK_KEY), path
    reply = http(player_server.port, "GET", "/player/config.json")
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == {"auth": "clerk", "clerkPublishableKey": CLERK_KEY}
