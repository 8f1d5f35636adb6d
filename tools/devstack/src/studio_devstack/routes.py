"""The route table (`deploy/helm/studio/routes.yaml`) as typed, validated data.

The local gateway and the cluster Ingress are both rendered from this one file,
so a mistake in it must fail loudly here rather than as a confusing proxy error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

ROUTES_RELATIVE_PATH = Path("deploy/helm/studio/routes.yaml")

# Characters that would let a path escape its nginx/Ingress token.
_UNSAFE_PATH = re.compile(r"[\s;{}\"'\\#$]")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RouteTableError(ValueError):
    """The route table is malformed or ambiguous."""


class Match(StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"


@dataclass(frozen=True)
class Service:
    name: str
    port: int

    @property
    def package(self) -> str:
        """The Python package that runs this service (`python -m studio_<name>`)."""
        return f"studio_{self.name}"


@dataclass(frozen=True)
class Route:
    path: str
    match: Match
    service: str


@dataclass(frozen=True)
class RouteTable:
    services: tuple[Service, ...]
    routes: tuple[Route, ...]

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def with_ports(self, ports: dict[str, int]) -> RouteTable:
        """The same table with some services moved to other ports (used by tests)."""
        services = tuple(Service(s.name, ports.get(s.name, s.port)) for s in self.services)
        return RouteTable(services=services, routes=self.routes)

    def shifted(self, offset: int) -> RouteTable:
        """Every service `offset` ports up (`STUDIO_PORT_OFFSET`)."""
        if not offset:
            return self
        moved = {s.name: s.port + offset for s in self.services}
        too_high = sorted(name for name, port in moved.items() if port > 65535)
        if too_high:
            raise RouteTableError(f"port offset {offset} moves {', '.join(too_high)} past 65535")
        return self.with_ports(moved)


def load_route_table(path: Path) -> RouteTable:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RouteTableError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return parse_route_table(data)
    except RouteTableError as exc:
        raise RouteTableError(f"{path}: {exc}") from exc


def parse_route_table(data: Any) -> RouteTable:
    if not isinstance(data, dict):
        raise RouteTableError("expected a mapping with 'services' and 'routes'")
    services = _parse_services(data.get("services"))
    known = {s.name for s in services}
    routes = tuple(_parse_route(i, raw, known) for i, raw in enumerate(data.get("routes") or []))
    _check_unambiguous(routes)
    return RouteTable(services=services, routes=routes)


def _parse_services(raw: Any) -> tuple[Service, ...]:
    if not isinstance(raw, dict) or not raw:
        raise RouteTableError("'services' must map each service name to {port: N}")
    services: list[Service] = []
    ports: dict[int, str] = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or not _SERVICE_NAME.match(name):
            raise RouteTableError(f"service name {name!r} must match {_SERVICE_NAME.pattern}")
        port = spec.get("port") if isinstance(spec, dict) else None
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise RouteTableError(f"service {name!r} needs an integer port between 1 and 65535")
        if port in ports:
            raise RouteTableError(f"services {ports[port]!r} and {name!r} share port {port}")
        ports[port] = name
        services.append(Service(name=name, port=port))
    return tuple(services)


def _parse_route(index: int, raw: Any, known_services: set[str]) -> Route:
    where = f"route #{index + 1}"
    if not isinstance(raw, dict):
        raise RouteTableError(f"{where}: expected {{path, match, service}}")
    path, match, service = raw.get("path"), raw.get("match"), raw.get("service")
    if not isinstance(path, str) or not path:
        raise RouteTableError(f"{where}: 'path' must be a non-empty string")
    try:
        kind = Match(str(match))
    except ValueError:
        choices = ", ".join(m.value for m in Match)
        raise RouteTableError(f"{where} ({path}): 'match' must be one of {choices}") from None
    if service not in known_services:
        raise RouteTableError(f"{where} ({path}): unknown service {service!r}")
    if kind is Match.REGEX:
        # nginx unescapes \" and \\ inside its quoted tokens, which would change the regex.
        if '"' in path or "\\\\" in path:
            raise RouteTableError(f"{where}: regex {path!r} cannot be quoted for nginx")
        try:
            re.compile(path)
        except re.error as exc:
            raise RouteTableError(f"{where}: invalid regex {path!r}: {exc}") from exc
        if not path.startswith("^/"):
            raise RouteTableError(f"{where}: regex {path!r} must be anchored with '^/'")
    else:
        if not path.startswith("/") or _UNSAFE_PATH.search(path):
            raise RouteTableError(
                f"{where}: path {path!r} must start with '/' and contain no spaces or quotes"
            )
    return Route(path=path, match=kind, service=str(service))


def _check_unambiguous(routes: tuple[Route, ...]) -> None:
    """Two routes that claim the same nginx location would be a config error (or worse,
    one silently shadowing the other), so reject them here."""
    claimed: dict[tuple[str, str], Route] = {}
    for route in routes:
        for key in _location_keys(route):
            if key in claimed:
                other = claimed[key]
                raise RouteTableError(
                    f"{route.match} route {route.path} ({route.service}) overlaps "
                    f"{other.match} route {other.path} ({other.service})"
                )
            claimed[key] = route


def _location_keys(route: Route) -> list[tuple[str, str]]:
    if route.match is Match.EXACT:
        return [("=", route.path)]
    if route.match is Match.REGEX:
        return [("~", route.path)]
    if route.path.endswith("/"):
        return [("", route.path)]
    # A prefix without a trailing slash covers the path itself and what lies below it.
    return [("=", route.path), ("", route.path + "/")]
