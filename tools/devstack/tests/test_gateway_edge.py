"""The in-cluster HLS edge's config (render_hls_edge_nginx_conf): exactly the local
gateway's /hls/ locations, and nothing else of the table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from studio_devstack.gateway import (
    EdgeServerOptions,
    GatewayOptions,
    render_hls_edge_nginx_conf,
    render_nginx_conf,
)
from studio_devstack.routes import RouteTable


def edge(**overrides: object) -> EdgeServerOptions:
    defaults: dict[str, object] = {
        "upstream": "media.example:8103",
        "resolver": "10.96.0.10",
        "trusted_proxies": ("10.0.0.0/8",),
    }
    return EdgeServerOptions(**{**defaults, **overrides})  # type: ignore[arg-type]


def _block(conf: str, opening: str) -> str:
    """One location block, up to its matching brace."""
    start = conf.index(opening)
    depth = 0
    for i in range(start, len(conf)):
        if conf[i] == "{":
            depth += 1
        elif conf[i] == "}":
            depth -= 1
            if depth == 0:
                return conf[start : i + 1]
    raise AssertionError(f"unclosed {opening}")


def _dedent(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines()]


def test_the_edge_has_the_gateways_hls_locations(route_table: RouteTable, tmp_path: Path) -> None:
    conf = render_hls_edge_nginx_conf(route_table, edge())
    gateway = render_nginx_conf(
        route_table, GatewayOptions(runtime_dir=tmp_path, resolver="10.96.0.10")
    )
    for opening in ("location /hls/ {", "location = /__studio/hls-storage {"):
        assert _dedent(_block(conf, opening)) == _dedent(_block(gateway, opening)), opening
    assert "server media.example:8103;" in conf
    assert "set_real_ip_from 10.0.0.0/8;" in conf
    assert "real_ip_header X-Forwarded-For;" in conf
    # No other route of the table: the ingress sends only /hls/ here.
    for route in route_table.routes:
        if route.path != "/hls/":
            assert f" {route.path} " not in conf, route.path
            assert f'"{route.path}"' not in conf, route.path
    assert re.findall(r"^\s*upstream (\S+) \{", conf, re.MULTILINE) == ["studio_media"]


def test_no_trusted_proxy_no_real_ip(route_table: RouteTable) -> None:
    conf = render_hls_edge_nginx_conf(route_table, edge(trusted_proxies=()))
    assert "real_ip" not in conf


def test_the_edge_needs_a_resolver_and_the_hls_route(route_table: RouteTable) -> None:
    with pytest.raises(ValueError, match="resolver"):
        render_hls_edge_nginx_conf(route_table, edge(resolver=""))
    without = dataclasses.replace(
        route_table, routes=tuple(r for r in route_table.routes if r.path != "/hls/")
    )
    with pytest.raises(ValueError, match="/hls/"):
        render_hls_edge_nginx_conf(without, edge())
