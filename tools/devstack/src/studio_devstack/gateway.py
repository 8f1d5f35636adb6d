"""The local gateway: an nginx config rendered from the route table.

`render_nginx_conf` is a pure function of the table and a few options, so the
same input always gives the same file and tests can check it without a server.

Routing follows the route table's own rules, which are nginx's: exact matches
first, then regex routes, then the longest prefix. A prefix route behaves like
a Kubernetes `Prefix` path: `/api/titles` covers `/api/titles` and
`/api/titles/...` but not `/api/titlesx`, so the gateway and the Ingress agree.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from studio_devstack.routes import Match, Route, RouteTable

# Same problem types as studio_common.errors, so clients see one vocabulary
# whether the gateway or a service answered.
PROBLEM_TYPE_PREFIX = "urn:studio:problem:"
# Every status nginx answers by itself, so none of them is nginx's HTML page.
_GATEWAY_PROBLEMS: dict[int, tuple[str, str, str]] = {
    400: (
        "bad-request",
        "Bad request",
        "The request line, path or headers could not be read (a NUL, a path above the root, "
        "a repeated header that must be unique...).",
    ),
    404: ("not-found", "Not found", "No service serves this path."),
    405: ("method-not-allowed", "Method not allowed", "This method is not accepted here."),
    413: ("payload-too-large", "Payload too large", "The request body is too large."),
    414: ("uri-too-long", "URI too long", "The request line is too long."),
    431: (
        "headers-too-large",
        "Request header fields too large",
        "A request header, or the headers together, are too large.",
    ),
    500: ("internal", "Internal server error", "The gateway could not handle this request."),
    502: ("unavailable", "Service unavailable", "The service behind this path did not answer."),
    503: ("unavailable", "Service unavailable", "The service behind this path is unavailable."),
    504: ("unavailable", "Service unavailable", "The service behind this path timed out."),
}
# nginx's own codes, answered as the standard status they stand for.
_NGINX_ALIASES: dict[int, int] = {
    494: 431,  # request header too large
}
# Where the gateway's problem bodies live (internal locations only).
PROBLEM_PATH = "/__studio/problem/"

# Private HLS at the edge (ADR 8): the route with this prefix asks its service
# (media) to check the token only; media answers X-Accel-Redirect to
# HLS_STORAGE_LOCATION with a presigned URL of the object in HLS_STORAGE_URL_HEADER,
# and nginx fetches the bytes from storage itself. Same names as studio_media.service.playback.
HLS_PREFIX = "/hls/"
HLS_EDGE_HEADER = "X-Studio-Hls-Edge"
HLS_STORAGE_LOCATION = "/__studio/hls-storage"
HLS_STORAGE_URL_HEADER = "X-Studio-Storage-Url"
# Storage's own answers on the HLS path, as the problems media would give.
_HLS_PROBLEMS: dict[str, tuple[int, str, str, str]] = {
    "hls-404": (404, "not-found", "Not found", "No such file in this episode."),
    "hls-416": (
        416,
        "range-not-satisfiable",
        "The requested range is not satisfiable",
        "The range lies outside the file.",
    ),
}
# Storage refusing the gateway's own signed request is the gateway's fault, not the caller's.
_HLS_STORAGE_FAULTS = (400, 401, 403, 405, 500, 501)
# One header line (a bearer token, cookies) may be this large; the request line too.
LARGE_HEADER_BUFFERS = "4 16k"

CORS_ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID, Range, If-None-Match"
CORS_EXPOSE_HEADERS = "X-Request-ID, Content-Length, Content-Range, ETag, Location, Retry-After"
# A client-supplied request id is kept only when it is short and plain, so it can
# go into logs and JSON bodies without escaping; otherwise nginx makes one.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

# The demo player (web/player) is served at `/`, its files under `/player/`.
PLAYER_PREFIX = "/player/"
PLAYER_CONFIG_PATH = "/player/config.json"
PLAYER_TYPES = {
    "text/html": "html",
    "text/css": "css",
    "application/javascript": "js mjs",
    "application/json": "json map",
    "image/svg+xml": "svg",
    "image/png": "png",
    "text/plain": "txt LICENSE",
    # The ASS renderer's WebAssembly and its fonts.
    "application/wasm": "wasm",
    "font/woff2": "woff2",
}
HSTS = "max-age=31536000; includeSubDomains"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
_CLERK_KEY = re.compile(r"^pk_(test|live)_([A-Za-z0-9+/=_-]+)$")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


@dataclass(frozen=True)
class GatewayOptions:
    runtime_dir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    upstream_host: str = "127.0.0.1"
    cors_origins: tuple[str, ...] = ()
    client_max_body_size: str = "16m"
    source: str = "deploy/helm/studio/routes.yaml"
    # web/player: served at `/` and `/player/` when set.
    player_dir: Path | None = None
    # STUDIO_CLERK_PUBLISHABLE_KEY: the player signs in with Clerk instead of dev tokens.
    clerk_publishable_key: str = ""
    # Where the workers buffer bodies (default: the runtime dir); see with_worker_temp_dir.
    temp_dir: Path | None = None
    # A DNS server for storage's host in the presigned URLs media hands the HLS edge
    # (ADR 8), when that host is a name (compose: minio); empty for an address.
    resolver: str = ""


@dataclass(frozen=True)
class PlayerServerOptions:
    """The player's own nginx (deploy/player/Dockerfile, the chart's `player`), which
    serves only the player. Its Clerk key is known only when the chart is installed,
    so the config reads it from `config_dir`: `config.json` and a `*.map` file
    (`player_clerk_origin_map`)."""

    root: Path
    config_dir: Path
    # The only writable place of a read-only container: pid and temp files.
    runtime_dir: Path = Path("/tmp")  # noqa: S108 - inside the player container
    listen: str = "8080"
    source: str = "deploy/player/nginx_conf.py"


@dataclass(frozen=True)
class EdgeServerOptions:
    """The in-cluster HLS edge (the chart's `hlsEdge`, ADR 8): nginx that takes
    `/hls/` from the ingress or Gateway, asks media to check the token and fetches
    the bytes from storage itself, as the local gateway does. The chart substitutes
    the placeholders deploy/helm/hls_edge_conf.py passes for these."""

    # host:port of the token-checking service (the chart: <release>-media:<port>).
    upstream: str
    # DNS for storage's host in the presigned URLs (the cluster's DNS Service).
    resolver: str
    # The ingress controller's / Gateway's addresses: their X-Forwarded-For names
    # the viewer, who becomes $remote_addr and the X-Forwarded-For media sees.
    trusted_proxies: tuple[str, ...] = ()
    runtime_dir: Path = Path("/tmp")  # noqa: S108 - inside the edge container
    listen: str = "8080"
    source: str = "deploy/helm/hls_edge_conf.py"


# The edge's own liveness/readiness path, answered by nginx alone (never routed
# to it by the ingress: only /hls/ is).
EDGE_HEALTH_PATH = "/__studio/healthz"


def player_clerk_origin_map(clerk_publishable_key: str) -> str:
    """The `<config_dir>/*.map` file that gives the player image's CSP a Clerk key's
    Frontend API origin (the chart renders the same from its values)."""
    return f'"" "https://{clerk_frontend_host(clerk_publishable_key)}";\n'


def clerk_frontend_host(publishable_key: str) -> str:
    """The Clerk Frontend API host a publishable key names: `pk_test_<base64("host$")>`."""
    match = _CLERK_KEY.match(publishable_key)
    if not match:
        raise ValueError("a Clerk publishable key looks like pk_test_... or pk_live_...")
    encoded = match.group(2)
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("the Clerk publishable key does not decode") from None
    host = decoded.rstrip("$").strip().lower()
    if not decoded.endswith("$") or not _HOST.match(host):
        raise ValueError("the Clerk publishable key does not name a host")
    return host


def content_security_policy(clerk_publishable_key: str = "") -> str:
    """The page's CSP: its own files only, no inline script or style. hls.js needs
    blob: for its worker and MediaSource; the ASS renderer (jassub) compiles
    WebAssembly in a same-origin module worker ('wasm-unsafe-eval'); Clerk mode
    adds its Frontend API host."""
    clerk = f"https://{clerk_frontend_host(clerk_publishable_key)}" if clerk_publishable_key else ""
    return _csp(extra_source=f" {clerk}" if clerk else "", frame_src=clerk or "'none'")


def _csp(extra_source: str, frame_src: str) -> str:
    """`extra_source` follows `'self'` where Clerk's scripts and API calls are allowed
    (empty or " https://host"). The player image passes nginx variables for both,
    since its Clerk key is known only when the chart is installed."""
    directives = {
        "default-src": "'self'",
        # WebAssembly compilation only (the ASS renderer, libass), not eval.
        "script-src": f"'self' 'wasm-unsafe-eval'{extra_source}",
        "style-src": "'self'",
        "img-src": "'self' data: blob: https:",
        "media-src": "'self' blob:",
        "worker-src": "'self' blob:",
        "connect-src": f"'self'{extra_source}",
        "font-src": "'self'",
        "frame-src": frame_src,
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def player_config(options: GatewayOptions) -> dict[str, object]:
    """What the player reads from /player/config.json."""
    return _player_config(options.clerk_publishable_key)


def _player_config(key: str) -> dict[str, object]:
    if key:
        clerk_frontend_host(key)  # a malformed key fails here, not in the browser
    return {"auth": "clerk" if key else "dev", "clerkPublishableKey": key or None}


def parse_cors_origins(raw: str | None) -> tuple[str, ...]:
    """`STUDIO_CORS_ORIGINS`: comma-separated origins, `*` for any origin."""
    if not raw:
        return ()
    origins: list[str] = []
    for part in raw.split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        if origin != "*" and ("://" not in origin or any(c in origin for c in " \"';{}$\\")):
            raise ValueError(f"CORS origin {origin!r} must look like http://host[:port]")
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def render_nginx_conf(table: RouteTable, options: GatewayOptions) -> str:
    run = options.runtime_dir
    lines: list[str] = [
        *_preamble(
            f"`studio-dev gateway-config` from {options.source}",
            "the route table",
            run / "nginx.pid",
            str(run / "error.log"),
        ),
        "http {",
        *_indent(
            _http_basics(
                run, options.client_max_body_size, str(run / "access.log"), options.temp_dir
            )
        ),
        "",
        *_indent(_maps(options.cors_origins)),
        "",
        *_indent(_upstreams(table, options.upstream_host)),
        *_indent(["server {", *_indent(_server(table, options)), "}"]),
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_player_nginx_conf(options: PlayerServerOptions) -> str:
    """A whole nginx config that serves the player as the gateway does (same
    locations, headers and problem bodies) behind an ingress controller.

    The CSP's Clerk origin comes from `<config_dir>/*.map` when present
    (`player_clerk_origin_map`); without it the policy is the development one.
    `config.json` in `config_dir` is served at /player/config.json, development
    sign-in without it.
    """
    run = options.runtime_dir
    dev_config = json.dumps(_player_config(""), separators=(",", ":"))
    config_location = [
        f"alias {options.config_dir / 'config.json'};",
        "expires -1;",
        "types {",
        "    application/json json;",
        "}",
        "# Not mounted (e.g. `docker run`): development sign-in.",
        "log_not_found off;",
        "error_page 404 = @player_dev_config;",
    ]
    server = [
        f"listen {options.listen};",
        "server_name _;",
        "",
        "# add_header lives here only: a location that set its own would silently",
        "# drop all of these.",
        *_security_headers(_csp("$studio_clerk_source", "$studio_clerk_frame")),
        "",
        *_player_locations(_player_root(options.root), config_location),
        "location @player_dev_config {",
        "    default_type application/json;",
        "    expires -1;",
        f"    return 200 '{dev_config}';",
        "}",
        "",
        "# nginx's own errors (a malformed request, headers too large...) as problems.",
        *_error_pages(),
        "",
        *_fallback_locations("# Anything else."),
    ]
    lines = [
        *_standalone_head(options.source, run),
        *_indent(
            [
                "# The Clerk Frontend API origin, empty for development sign-in.",
                'map "" $studio_clerk_origin {',
                '    default "";',
                f"    include {options.config_dir / '*.map'};",
                "}",
                "map $studio_clerk_origin $studio_clerk_source {",
                '    "" "";',
                '    default " $studio_clerk_origin";',
                "}",
                "map $studio_clerk_origin $studio_clerk_frame {",
                '    "" "\'none\'";',
                "    default $studio_clerk_origin;",
                "}",
                "",
                "# HSTS only when the ingress controller was reached over TLS.",
                *_hsts_map("$http_x_forwarded_proto"),
            ]
        ),
        "",
        *_indent(["server {", *_indent(server), "}"]),
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_hls_edge_nginx_conf(table: RouteTable, options: EdgeServerOptions) -> str:
    """A whole nginx config for the in-cluster HLS edge: the table's `/hls/` route
    with exactly the local gateway's locations (`_hls_edge_locations`), its problem
    bodies and security headers, and nothing else (any other path is the 404
    problem). CORS stays with the ingress or Gateway in front of it."""
    hls = [r for r in table.routes if r.path == HLS_PREFIX and r.match is Match.PREFIX]
    if len(hls) != 1:
        raise ValueError(f"the route table has no single prefix route {HLS_PREFIX}")
    (route,) = hls
    if not options.resolver:
        raise ValueError("the HLS edge needs a resolver for storage's host")
    run = options.runtime_dir
    real_ip = [f"set_real_ip_from {proxy};" for proxy in options.trusted_proxies]
    if real_ip:
        real_ip += ["real_ip_header X-Forwarded-For;", "real_ip_recursive on;"]
    server = [
        f"listen {options.listen};",
        "server_name _;",
        "",
        *(
            ["# The viewer's address, from the trusted proxies' X-Forwarded-For.", *real_ip, ""]
            if real_ip
            else []
        ),
        "# add_header/proxy_set_header live here only: a location that set its own",
        "# would silently drop all of these.",
        *_security_headers(content_security_policy()),
        "",
        "proxy_http_version 1.1;",
        *_proxy_headers(),
        "proxy_hide_header X-Request-ID;",
        "proxy_connect_timeout 5s;",
        "proxy_read_timeout 120s;",
        "proxy_send_timeout 120s;",
        "",
        *_error_pages(),
        "",
        f"location = {EDGE_HEALTH_PATH} {{",
        "    access_log off;",
        "    default_type text/plain;",
        "    return 200 'ok';",
        "}",
        "",
        *_hls_edge_locations(route, options.resolver),
        *_hls_problem_locations(),
        *_fallback_locations("# Anything else: the ingress sends only the HLS route here."),
    ]
    lines = [
        *_standalone_head(options.source, run),
        *_indent(
            [
                "# HSTS only when the client reached the ingress over TLS.",
                *_hsts_map("$http_x_forwarded_proto"),
                "",
                f"upstream studio_{route.service} {{",
                f"    server {options.upstream};",
                "    keepalive 16;",
                "}",
            ]
        ),
        "",
        *_indent(["server {", *_indent(server), "}"]),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _standalone_head(source: str, run: Path) -> list[str]:
    """The start of a server image's config (the player, the HLS edge): logs to
    the container's stdio, small bodies, request ids; ``http {`` left open."""
    return [
        *_preamble(
            f"{source} (studio_devstack.gateway)", "the generator", run / "nginx.pid", "stderr"
        ),
        "http {",
        *_indent(_http_basics(run, "1m", "/dev/stdout")),
        "",
        *_indent(_request_id_map()),
        "",
    ]


def _fallback_locations(comment: str) -> list[str]:
    """A server's last locations: a 404 problem for whatever no location claims,
    and the targets of nginx's own error pages."""
    return [
        comment,
        "location / {",
        *_indent(_problem_body(404)),
        "}",
        "",
        "location @problem_404 {",
        *_indent(_problem_body(404)),
        "}",
        "",
        *_problem_locations()[:-1],
    ]


def _preamble(generated_by: str, source: str, pid: Path, error_log: str) -> list[str]:
    """What comes before `http {` in every generated config."""
    return [
        f"# Generated by {generated_by}. Do not edit:",
        f"# change {source} and regenerate.",
        "worker_processes 1;",
        f"pid {pid};",
        f"error_log {error_log} warn;",
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
    ]


def _http_basics(
    run: Path, client_max_body_size: str, access_log: str, temp_dir: Path | None = None
) -> list[str]:
    log_fields = {
        "time": "$time_iso8601",
        "request_id": "$studio_request_id",
        "remote_addr": "$remote_addr",
        "method": "$request_method",
        "uri": "$request_uri",
        "status": "$status",
        "bytes_sent": "$body_bytes_sent",
        "duration": "$request_time",
        "upstream": "$upstream_addr",
        "upstream_status": "$upstream_status",
        "upstream_duration": "$upstream_response_time",
        "origin": "$http_origin",
        "user_agent": "$http_user_agent",
    }
    temp = temp_dir or run
    numeric = {"status", "bytes_sent", "duration"}
    log_json = (
        "{"
        + ",".join(f'"{k}":{v}' if k in numeric else f'"{k}":"{v}"' for k, v in log_fields.items())
        + "}"
    )
    return [
        "default_type application/octet-stream;",
        "server_tokens off;",
        "sendfile on;",
        "keepalive_timeout 65s;",
        f"client_max_body_size {client_max_body_size};",
        f"large_client_header_buffers {LARGE_HEADER_BUFFERS};",
        "",
        "# Everything nginx writes stays under the runtime dir, so it runs without root;",
        "# the workers write request bodies and large responses here.",
        f"client_body_temp_path {temp / 'client_body'};",
        f"proxy_temp_path {temp / 'proxy'};",
        f"fastcgi_temp_path {temp / 'fastcgi'};",
        f"uwsgi_temp_path {temp / 'uwsgi'};",
        f"scgi_temp_path {temp / 'scgi'};",
        "",
        f"log_format studio_json escape=json '{log_json}';",
        f"access_log {access_log} studio_json;",
    ]


def _request_id_map() -> list[str]:
    return [
        "map $http_x_request_id $studio_request_id {",
        f'    "~{REQUEST_ID_PATTERN}" $http_x_request_id;',
        "    default $request_id;",
        "}",
    ]


def _hsts_map(scheme: str) -> list[str]:
    """`scheme`: the variable that says whether the client came over TLS."""
    return [
        f"map {scheme} $studio_hsts {{",
        f'    https "{HSTS}";',
        '    default "";',
        "}",
    ]


def _maps(cors_origins: Iterable[str]) -> list[str]:
    origins = tuple(cors_origins)
    lines = [
        *_request_id_map(),
        "",
        "# The Origin is echoed back only when it is one of STUDIO_CORS_ORIGINS.",
        "map $http_origin $studio_cors_origin {",
        "    default " + ('"$http_origin"' if "*" in origins else '""') + ";",
    ]
    if "*" in origins:
        lines.append('    "" "";')
    lines += [f'    "{origin}" "$http_origin";' for origin in origins if origin != "*"]
    lines += [
        "}",
        "",
        "# A CORS preflight: OPTIONS from an allowed origin that names a method.",
        'map "$request_method|$http_access_control_request_method|$studio_cors_origin"'
        " $studio_cors_preflight {",
        '    "~^OPTIONS\\|[^|]+\\|.+$" 1;',
        "    default 0;",
        "}",
        "map $studio_cors_origin $studio_cors_vary {",
        '    "" "";',
        "    default Origin;",
        "}",
        "map $studio_cors_origin $studio_cors_credentials {",
        '    "" "";',
        "    default true;",
        "}",
        "map $studio_cors_origin $studio_cors_expose {",
        '    "" "";',
        f'    default "{CORS_EXPOSE_HEADERS}";',
        "}",
        "map $studio_cors_preflight $studio_cors_methods {",
        f'    1 "{CORS_ALLOW_METHODS}";',
        '    default "";',
        "}",
        "map $studio_cors_preflight $studio_cors_headers {",
        f'    1 "{CORS_ALLOW_HEADERS}";',
        '    default "";',
        "}",
        "map $studio_cors_preflight $studio_cors_max_age {",
        "    1 600;",
        '    default "";',
        "}",
        "",
        "# HSTS only over TLS (an empty value sends no header).",
        *_hsts_map("$scheme"),
    ]
    return lines


def _upstreams(table: RouteTable, host: str) -> list[str]:
    lines: list[str] = []
    for service in table.services:
        lines += [
            f"upstream studio_{service.name} {{",
            f"    server {host}:{service.port};",
            "    keepalive 16;",
            "}",
            "",
        ]
    return lines


def _server(table: RouteTable, options: GatewayOptions) -> list[str]:
    lines = [
        f"listen {options.listen_host}:{options.listen_port};",
        "server_name _;",
        "",
        "# add_header/proxy_set_header live here only: a location that set its own",
        "# would silently drop all of these.",
        *_security_headers(content_security_policy(options.clerk_publishable_key)),
        "add_header Access-Control-Allow-Origin $studio_cors_origin always;",
        "add_header Access-Control-Allow-Credentials $studio_cors_credentials always;",
        "add_header Access-Control-Expose-Headers $studio_cors_expose always;",
        "add_header Access-Control-Allow-Methods $studio_cors_methods always;",
        "add_header Access-Control-Allow-Headers $studio_cors_headers always;",
        "add_header Access-Control-Max-Age $studio_cors_max_age always;",
        "add_header Vary $studio_cors_vary always;",
        "",
        "proxy_http_version 1.1;",
        *_proxy_headers(),
        "# Services echo the id they were given; the gateway sends it once itself.",
        "proxy_hide_header X-Request-ID;",
        "proxy_connect_timeout 5s;",
        "proxy_read_timeout 120s;",
        "proxy_send_timeout 120s;",
        "",
        "if ($studio_cors_preflight) {",
        "    return 204;",
        "}",
        "",
    ]
    lines += _error_pages()
    lines.append("")
    for route in _ordered(table.routes):
        if route.path == HLS_PREFIX and route.match is Match.PREFIX:
            lines += _hls_edge_locations(route, options.resolver)
            lines += _hls_problem_locations()
        else:
            lines += _locations(route)
    if options.player_dir is not None:
        config = json.dumps(player_config(options), separators=(",", ":"))
        lines += _player_locations(
            _player_root(options.player_dir),
            ["default_type application/json;", "expires -1;", f"return 200 '{config}';"],
        )
    return lines + _fallback_locations("# Anything no route claims.")


def _proxy_headers() -> list[str]:
    """The server's proxy_set_header lines; a location that sets one repeats them all."""
    return [
        'proxy_set_header Connection "";',
        "proxy_set_header Host $http_host;",
        "# The edge: what a client wrote in X-Forwarded-For is not passed on, so the",
        "# services (which trust this gateway, STUDIO_TRUSTED_PROXIES) see the real peer.",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        "proxy_set_header X-Request-ID $studio_request_id;",
    ]


def _hls_edge_locations(route: Route, resolver: str = "") -> list[str]:
    """ADR 8: media checks the token (no database, no bytes) and names the object;
    nginx fetches it from storage with Range, HEAD, ETag and the stored Cache-Control
    passed through, and storage's errors become problems. Media's own problems
    (403 for a forged, expired or other-episode token, 400 for a bad path) pass
    through unchanged."""
    faults = " ".join(str(code) for code in _HLS_STORAGE_FAULTS)
    return [
        f"# prefix {route.path} -> {route.service} checks the token, storage sends the bytes",
        f"location {route.path} {{",
        *_indent(_proxy_headers()),
        f"    proxy_set_header {HLS_EDGE_HEADER} storage;",
        f"    proxy_pass http://studio_{route.service};",
        "}",
        "",
        f"location = {HLS_STORAGE_LOCATION} {{",
        "    internal;",
        "    # Read before proxy_pass starts a new upstream request: media's answer.",
        f"    set $studio_storage_url $upstream_http_{_var(HLS_STORAGE_URL_HEADER)};",
        "    proxy_pass $studio_storage_url;",
        *([f"    resolver {resolver} valid=30s ipv6=off;"] if resolver else []),
        "    # The URL is signed for its own host; nothing of the client's reaches storage",
        "    # but Range and the conditionals.",
        "    proxy_set_header Host $proxy_host;",
        "    proxy_ssl_server_name on;",
        '    proxy_set_header Connection "";',
        '    proxy_set_header Authorization "";',
        '    proxy_set_header Cookie "";',
        '    proxy_set_header Origin "";',
        '    proxy_set_header X-Forwarded-For "";',
        '    proxy_set_header X-Request-ID "";',
        *[
            f"    proxy_hide_header {name};"
            for name in (
                "x-amz-request-id",
                "x-amz-id-2",
                "x-amz-version-id",
                "x-amz-server-side-encryption",
                "x-amz-storage-class",
                "x-amz-content-sha256",
                "x-amz-sdk-checksum-algorithm",
                "x-amz-checksum-crc32",
                "x-amz-checksum-crc64nvme",
                "Server",
                "Access-Control-Allow-Origin",
                "Access-Control-Allow-Credentials",
                "Access-Control-Expose-Headers",
                "Access-Control-Allow-Methods",
                "Access-Control-Allow-Headers",
                "Vary",
            )
        ],
        "    # Segments are megabytes: kept in memory, never spooled to a temp file;",
        "    # storage is read as fast as the player takes the bytes.",
        "    proxy_buffer_size 16k;",
        "    proxy_buffers 16 64k;",
        "    proxy_busy_buffers_size 128k;",
        "    proxy_max_temp_file_size 0;",
        "    proxy_intercept_errors on;",
        f"    error_page 404 =404 {PROBLEM_PATH}hls-404;",
        f"    error_page 416 =416 {PROBLEM_PATH}hls-416;",
        f"    error_page {faults} =502 {PROBLEM_PATH}502;",
        *[
            f"    error_page {status} ={status} {PROBLEM_PATH}{status};"
            for status in (502, 503, 504)
        ],
        "}",
        "",
    ]


def _var(header: str) -> str:
    """A response header's name as nginx spells it in $upstream_http_..."""
    return header.lower().replace("-", "_")


def _hls_problem_locations() -> list[str]:
    lines: list[str] = []
    for name, (status, slug, title, detail) in _HLS_PROBLEMS.items():
        lines += [
            f"location = {PROBLEM_PATH}{name} {{",
            "    internal;",
            *_indent(_problem_return(status, slug, title, detail)),
            "}",
            "",
        ]
    return lines


def _error_pages() -> list[str]:
    """`error_page` for every status nginx may answer itself but 404, which stays
    with the locations that can produce it (`location /`, the player's files).

    They lead to internal locations by URI, not to named ones: a request whose
    request line could not be parsed has no URI, and nginx cannot hand it to a
    named location (it would answer its own HTML 500 instead)."""
    lines = [
        f"error_page {status} ={status} {PROBLEM_PATH}{status};"
        for status in _problem_page_statuses()
    ]
    lines += [
        f"error_page {code} ={status} {PROBLEM_PATH}{status};"
        for code, status in sorted(_NGINX_ALIASES.items())
    ]
    return lines


def _problem_page_statuses() -> list[int]:
    return sorted(status for status in _GATEWAY_PROBLEMS if status != 404)


def _problem_locations() -> list[str]:
    """The targets of `_error_pages`; `internal`, so a client asking for one gets a 404."""
    lines: list[str] = []
    for status in _problem_page_statuses():
        lines += [
            f"location = {PROBLEM_PATH}{status} {{",
            "    internal;",
            "    error_page 404 @problem_404;",
            *_indent(_problem_body(status)),
            "}",
            "",
        ]
    return lines


def _security_headers(csp: str) -> list[str]:
    """What every response carries, the player's page above all."""
    return [
        'add_header X-Content-Type-Options "nosniff" always;',
        'add_header X-Frame-Options "DENY" always;',
        'add_header Referrer-Policy "strict-origin-when-cross-origin" always;',
        f'add_header Content-Security-Policy "{csp}" always;',
        f'add_header Permissions-Policy "{PERMISSIONS_POLICY}" always;',
        'add_header Cross-Origin-Opener-Policy "same-origin" always;',
        "add_header Strict-Transport-Security $studio_hsts always;",
        "add_header X-Request-ID $studio_request_id always;",
    ]


def _player_root(player_dir: Path) -> Path:
    # An absolute path may name a directory inside a container (compose, the
    # player image), which must not be resolved against this machine's files.
    return player_dir if player_dir.is_absolute() else player_dir.resolve()


def _player_locations(root: Path, config: list[str]) -> list[str]:
    """The demo player: `/` is its index.html, `/player/` its files, no route of the
    table is shadowed (they are all under /api, /hls and /.well-known). The
    server-level headers (CSP and the rest) apply: no location adds its own.
    `config`: how /player/config.json is answered."""
    types = [f"    {mime} {exts};" for mime, exts in PLAYER_TYPES.items()]
    return [
        "# The demo player (web/player): index at /, files under /player/.",
        "location = / {",
        f"    root {root};",
        "    try_files /index.html =404;",
        "    expires -1;",
        "    types {",
        "        text/html html;",
        "    }",
        "}",
        f"location = {PLAYER_CONFIG_PATH} {{",
        *_indent(config),
        "}",
        f"location ^~ {PLAYER_PREFIX} {{",
        f"    alias {root}/;",
        "    expires -1;",
        "    charset utf-8;",
        "    charset_types text/css application/javascript application/json text/plain;",
        "    types {",
        *[f"    {t}" for t in types],
        "    }",
        "    error_page 404 @problem_404;",
        "}",
        "",
    ]


def _ordered(routes: Iterable[Route]) -> list[Route]:
    """nginx picks by match kind, not file order; list them the same way so the
    file reads like the decision it encodes. Regex order is kept: first match wins."""
    rank = {Match.EXACT: 0, Match.REGEX: 1, Match.PREFIX: 2}
    return sorted(
        routes,
        key=lambda r: (rank[r.match], 0 if r.match is Match.REGEX else -len(r.path)),
    )


def _locations(route: Route) -> list[str]:
    proxy = [f"    proxy_pass http://studio_{route.service};", "}"]
    comment = f"# {route.match.value} {route.path} -> {route.service}"
    if route.match is Match.EXACT:
        return [comment, f"location = {route.path} {{", *proxy, ""]
    if route.match is Match.REGEX:
        return [comment, f'location ~ "{route.path}" {{', *proxy, ""]
    if route.path.endswith("/"):
        return [comment, f"location {route.path} {{", *proxy, ""]
    return [
        comment,
        f"location = {route.path} {{",
        *proxy,
        f"location {route.path}/ {{",
        *proxy,
        "",
    ]


def _problem_body(status: int) -> list[str]:
    return _problem_return(status, *_GATEWAY_PROBLEMS[status])


def _problem_return(status: int, slug: str, title: str, detail: str) -> list[str]:
    body = json.dumps(
        {
            "type": PROBLEM_TYPE_PREFIX + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "request_id": "__REQUEST_ID__",
        },
        separators=(",", ":"),
    ).replace("__REQUEST_ID__", "$studio_request_id")
    return [
        # No extension types here: `/x.html` gets a problem body, not text/html.
        "types { }",
        "default_type application/problem+json;",
        f"return {status} '{body}';",
    ]


def _indent(lines: Iterable[str]) -> list[str]:
    return [f"    {line}" if line else "" for line in lines]


def find_nginx() -> str | None:
    """The nginx binary: on PATH, or where Debian puts it (/usr/sbin is not on
    every user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def nginx_command(nginx: str, runtime_dir: Path, *, test_only: bool = False) -> list[str]:
    """Run nginx in the foreground with every path under `runtime_dir`; `-e` moves the
    startup error log too, which otherwise opens a root-owned file before the config
    is read."""
    argv = [
        nginx,
        "-p",
        str(runtime_dir),
        "-c",
        str(runtime_dir / "nginx.conf"),
        "-e",
        str(runtime_dir / "error.log"),
    ]
    return [*argv, "-t", "-q"] if test_only else [*argv, "-g", "daemon off;"]


def worker_temp_dir_needed(runtime_dir: Path) -> bool:
    """Started as root, nginx runs its workers as an unprivileged user (nobody),
    who cannot enter a private directory such as a mkdtemp data dir or a home:
    request bodies over the in-memory buffer would then fail with a 500."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    for directory in (runtime_dir, *runtime_dir.parents):
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            return True
    return False


def with_worker_temp_dir(options: GatewayOptions) -> GatewayOptions:
    """The options with a temp dir the workers can reach, made when needed: a fresh
    private directory under the system temp dir that others may only pass through;
    nginx creates the temp paths inside it and hands them to the workers."""
    if options.temp_dir is not None or not worker_temp_dir_needed(options.runtime_dir):
        return options
    temp = Path(tempfile.mkdtemp(prefix="studio-gateway-"))
    temp.chmod(0o711)
    return replace(options, temp_dir=temp)


def system_resolver(resolv_conf: Path = Path("/etc/resolv.conf")) -> str:
    """The first nameserver of this machine, for an S3 endpoint given by name
    (STUDIO_S3_ENDPOINT_URL=https://s3...); empty when there is none."""
    try:
        lines = resolv_conf.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            address = parts[1]
            return f"[{address}]" if ":" in address else address
    return ""


def write_nginx_conf(table: RouteTable, options: GatewayOptions) -> Path:
    options.runtime_dir.mkdir(parents=True, exist_ok=True)
    options = with_worker_temp_dir(options)
    if not options.resolver:
        options = replace(options, resolver=system_resolver())
    path = options.runtime_dir / "nginx.conf"
    path.write_text(render_nginx_conf(table, options), encoding="utf-8")
    return path
