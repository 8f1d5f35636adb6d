"""The generated nginx config, read as text: properties that must hold for any table."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from studio_devstack.gateway import (
    GatewayOptions,
    find_nginx,
    nginx_command,
    parse_cors_origins,
    render_nginx_conf,
    system_resolver,
    write_nginx_conf,
)
from studio_devstack.routes import RouteTable


def options(tmp_path: Path, **overrides: object) -> GatewayOptions:
    defaults: dict[str, object] = {
        "runtime_dir": tmp_path / "gateway",
        "cors_origins": ("http://localhost:3000",),
    }
    return GatewayOptions(**{**defaults, **overrides})  # type: ignore[arg-type]


def test_rendering_is_a_pure_function_of_its_inputs(
    route_table: RouteTable, tmp_path: Path
) -> None:
    first = render_nginx_conf(route_table, options(tmp_path))
    assert first == render_nginx_conf(route_table, options(tmp_path))
    moved = render_nginx_conf(route_table.with_ports({"media": 18103}), options(tmp_path))
    assert moved != first
    assert "server 127.0.0.1:18103;" in moved
    assert not (tmp_path / "gateway").exists(), "rendering must not touch the disk"


def test_every_service_is_an_upstream_and_every_route_a_location(
    route_table: RouteTable, tmp_path: Path
) -> None:
    conf = render_nginx_conf(route_table, options(tmp_path))
    for service in route_table.services:
        assert (
            f"upstream studio_{service.name} {{\n        server 127.0.0.1:{service.port};" in conf
        )
    assert "location = /api/me {\n            proxy_pass http://studio_identity;" in conf
    assert "location /api/me/ {\n            proxy_pass http://studio_playback;" in conf
    assert 'location ~ "^/api/episodes/[^/]+/hls$" {' in conf
    # A prefix is path-segment aware, like a Kubernetes Prefix path.
    assert "location = /api/titles {" in conf
    assert "location /api/titles/ {" in conf
    assert "location /api/titles {" not in conf


def test_no_location_sets_its_own_headers(route_table: RouteTable, tmp_path: Path) -> None:
    """nginx drops every inherited add_header/proxy_set_header in a block that sets
    one of its own; keeping them at server level keeps the security headers on
    every response."""
    conf = render_nginx_conf(route_table, options(tmp_path))
    blocks = re.findall(r"^\s*location [^{]*\{[^}]*\}", conf, re.MULTILINE)
    assert len(blocks) > len(route_table.routes)
    server_level = re.findall(r"^        (proxy_set_header [^\n]*)$", conf, re.MULTILINE)
    assert server_level
    for block in blocks:
        assert "add_header" not in block
        if block.strip().startswith("location /hls/ {"):
            # The HLS edge (ADR 8) adds one header, so it repeats the server's.
            assert all(line in block for line in server_level), block
        elif "__studio/hls-storage" not in block:
            assert "proxy_set_header" not in block


def test_every_path_nginx_writes_is_under_the_runtime_dir(
    route_table: RouteTable, tmp_path: Path
) -> None:
    run = tmp_path / "gateway"
    conf = render_nginx_conf(route_table, options(tmp_path))
    for directive in (
        "pid",
        "error_log",
        "access_log",
        "client_body_temp_path",
        "proxy_temp_path",
        "fastcgi_temp_path",
        "uwsgi_temp_path",
        "scgi_temp_path",
    ):
        found = re.search(rf"^\s*{directive} (\S+)", conf, re.MULTILINE)
        assert found, directive
        assert found.group(1).startswith(str(run)), directive
    assert nginx_command("/usr/sbin/nginx", run)[-2:] == ["-g", "daemon off;"]
    assert str(run / "error.log") in nginx_command("nginx", run)


def test_cors_origins_become_map_entries(route_table: RouteTable, tmp_path: Path) -> None:
    conf = render_nginx_conf(
        route_table, options(tmp_path, cors_origins=("http://a.test", "https://b.test:8443"))
    )
    assert '"http://a.test" "$http_origin";' in conf
    assert '"https://b.test:8443" "$http_origin";' in conf
    none = render_nginx_conf(route_table, options(tmp_path, cors_origins=()))
    assert '"$http_origin";' not in none


def test_parse_cors_origins() -> None:
    assert parse_cors_origins(None) == ()
    assert parse_cors_origins(" http://a.test/ , ,http://b.test,http://a.test") == (
        "http://a.test",
        "http://b.test",
    )
    assert parse_cors_origins("*") == ("*",)
    with pytest.raises(ValueError, match="must look like"):
        parse_cors_origins("a.test")
    with pytest.raises(ValueError, match="must look like"):
        parse_cors_origins('http://a.test";evil')


@pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed")
@pytest.mark.parametrize("origins", [(), ("*",), ("http://localhost:3000", "http://x.test:1")])
def test_nginx_accepts_the_generated_file(
    route_table: RouteTable, tmp_path: Path, origins: tuple[str, ...]
) -> None:
    opts = options(tmp_path, cors_origins=origins)
    write_nginx_conf(route_table, opts)
    nginx = find_nginx()
    assert nginx is not None
    result = subprocess.run(
        nginx_command(nginx, opts.runtime_dir, test_only=True),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_hls_goes_to_media_for_the_check_and_to_storage_for_the_bytes(
    route_table: RouteTable, tmp_path: Path
) -> None:
    """ADR 8: media answers X-Accel-Redirect to an internal location that proxies the
    presigned URL it named; storage's errors become problems there."""
    conf = render_nginx_conf(route_table, options(tmp_path))
    hls = conf.split("location /hls/ {", 1)[1].split("}", 1)[0]
    assert "proxy_set_header X-Studio-Hls-Edge storage;" in hls
    assert "proxy_pass http://studio_media;" in hls
    storage = conf.split("location = /__studio/hls-storage {", 1)[1].split("}", 1)[0]
    assert "internal;" in storage
    assert "set $studio_storage_url $upstream_http_x_studio_storage_url;" in storage
    assert "proxy_set_header Host $proxy_host;" in storage
    assert 'proxy_set_header Authorization "";' in storage
    assert "error_page 404 =404 /__studio/problem/hls-404;" in storage
    assert "resolver" not in storage
    named = render_nginx_conf(route_table, options(tmp_path, resolver="127.0.0.11"))
    assert "resolver 127.0.0.11 valid=30s ipv6=off;" in named


def test_the_system_resolver_is_the_first_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n")
    assert system_resolver(conf) == "10.0.0.2"
    conf.write_text("nameserver fd00::53\n")
    assert system_resolver(conf) == "[fd00::53]"
    conf.write_text("search example\n")
    assert system_resolver(conf) == ""
    assert system_resolver(tmp_path / "missing") == ""
