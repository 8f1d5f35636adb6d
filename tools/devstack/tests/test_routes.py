from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from studio_devstack.routes import (
    Match,
    Route,
    RouteTable,
    RouteTableError,
    load_route_table,
    parse_route_table,
)


def table(*routes: dict[str, Any], services: dict[str, Any] | None = None) -> RouteTable:
    return parse_route_table(
        {"services": services or {"a": {"port": 9001}, "b": {"port": 9002}}, "routes": list(routes)}
    )


def test_the_checkout_route_table_loads(route_table: RouteTable) -> None:
    assert [s.name for s in route_table.services] == [
        "catalog",
        "identity",
        "media",
        "transcoder",
        "playback",
    ]
    assert route_table.service("media").port == 8103
    assert route_table.service("catalog").package == "studio_catalog"
    assert Route("^/api/episodes/[^/]+/hls$", Match.REGEX, "media") in route_table.routes


def test_with_ports_moves_only_the_named_services(route_table: RouteTable) -> None:
    moved = route_table.with_ports({"catalog": 18101})
    assert moved.service("catalog").port == 18101
    assert moved.service("identity").port == 8102
    assert moved.routes == route_table.routes


@pytest.mark.parametrize(
    ("routes", "services", "message"),
    [
        ([{"path": "/x", "match": "prefix", "service": "nope"}], None, "unknown service 'nope'"),
        ([{"path": "/x", "match": "glob", "service": "a"}], None, "'match' must be one of"),
        ([{"path": "x", "match": "exact", "service": "a"}], None, "must start with '/'"),
        ([{"path": "/x;evil", "match": "prefix", "service": "a"}], None, "no spaces or quotes"),
        ([{"path": "^/a(", "match": "regex", "service": "a"}], None, "invalid regex"),
        ([{"path": "/a/.*", "match": "regex", "service": "a"}], None, "anchored"),
        ([{"path": '^/a"b', "match": "regex", "service": "a"}], None, "cannot be quoted"),
        (
            [
                {"path": "/x", "match": "prefix", "service": "a"},
                {"path": "/x", "match": "exact", "service": "b"},
            ],
            None,
            "overlaps",
        ),
        (
            [
                {"path": "/x", "match": "prefix", "service": "a"},
                {"path": "/x/", "match": "prefix", "service": "b"},
            ],
            None,
            "overlaps",
        ),
        ([], {"a": {"port": 1}, "b": {"port": 1}}, "share port 1"),
        ([], {"a": {"port": "80"}}, "integer port"),
        ([], {"Bad-Name": {"port": 80}}, "service name"),
    ],
)
def test_malformed_tables_are_rejected(
    routes: list[dict[str, Any]], services: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(RouteTableError, match=message):
        table(*routes, services=services)


def test_exact_and_slash_prefix_of_the_same_stem_coexist() -> None:
    # /api/me (identity) and /api/me/ (playback) are different locations.
    parsed = table(
        {"path": "/api/me", "match": "exact", "service": "a"},
        {"path": "/api/me/", "match": "prefix", "service": "b"},
    )
    assert len(parsed.routes) == 2


def test_load_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("services: {a: {port: 1}}\nroutes: [{path: /x, match: prefix, service: z}]\n")
    with pytest.raises(RouteTableError, match=r"routes\.yaml: route #1 \(/x\): unknown service"):
        load_route_table(path)
