"""The in-cluster HLS edge (ADR 8, the chart's `hlsEdge`): its nginx config is the
generator's (studio_devstack.gateway, like the local and compose gateways), the
Ingress sends /hls/ through it, and the config the chart renders really checks
the token with media and fetches the bytes from storage (a local nginx with
stand-ins for media and storage)."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from studio_devstack.backing import wait_for_tcp
from studio_devstack.gateway import (
    EDGE_HEALTH_PATH,
    HLS_EDGE_HEADER,
    HLS_STORAGE_LOCATION,
    HLS_STORAGE_URL_HEADER,
    find_nginx,
)

from .conftest import CHART, RELEASE, ROOT, VALUES, load_values, of_kind

EDGE_CONF = ROOT / "deploy" / "helm" / "studio" / "files" / "hls-edge.conf"
EDGE = f"{RELEASE}-hls-edge"


def edge_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "hls_edge_conf", ROOT / "deploy" / "helm" / "hls_edge_conf.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def merged(values: str) -> dict[str, Any]:
    """What the chart sees for hlsEdge/ingress: values.yaml under the file's own."""
    base = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    own = load_values(values)
    return {
        key: {**base[key], **own.get(key, {})}
        for key in ("hlsEdge", "ingress", "gatewayApi")
        if key in base
    }


def test_the_checked_in_config_is_the_generators():
    assert EDGE_CONF.read_text(encoding="utf-8") == edge_module().render(), (
        "regenerate: uv run --frozen python deploy/helm/hls_edge_conf.py"
        " > deploy/helm/studio/files/hls-edge.conf"
    )


@pytest.mark.parametrize("values", list(VALUES))
def test_the_chart_renders_what_the_generator_makes_for_its_values(render, route_table, values):
    v = merged(values)
    assert v["hlsEdge"]["enabled"], "the edge is on in every shipped values file"
    manifests = render(values)
    conf = of_kind(manifests, "ConfigMap")[EDGE]["data"]["nginx.conf"]
    media_port = route_table["services"]["media"]["port"]
    expected = edge_module().render(
        upstream=f"{RELEASE}-media:{media_port}",
        resolver=v["hlsEdge"]["resolver"],
        trusted_proxies=tuple(v["ingress"]["trustedProxies"]),
    )
    assert conf == expected
    assert "__STUDIO_" not in conf
    # The pods restart when the config changes, and run it hardened.
    deployment = of_kind(manifests, "Deployment")[EDGE]
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"][:3] == ["nginx", "-c", "/etc/studio/hls-edge/nginx.conf"]
    assert c["readinessProbe"]["httpGet"]["path"] == EDGE_HEALTH_PATH
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("values", list(VALUES))
def test_segment_routes_go_through_the_edge(render, route_table, kinds, values):
    manifests = render(values)
    routes = {
        (p["path"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
        for ingress in kinds(manifests, "Ingress").values()
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    routes |= {
        (m["path"]["value"], b["name"], b["port"])
        for route in kinds(manifests, "HTTPRoute").values()
        for rule in route["spec"]["rules"]
        for m in rule["matches"]
        for b in rule["backendRefs"]
    }
    hls = {r for r in routes if r[0].startswith("/hls")}
    assert hls
    assert {(name, port) for _, name, port in hls} == {(EDGE, 8080)}
    media_port = route_table["services"]["media"]["port"]
    assert (f"{RELEASE}-media", media_port) in {(n, p) for _, n, p in routes}
    service = of_kind(manifests, "Service")[EDGE]
    assert service["spec"]["ports"][0]["port"] == 8080


def test_without_the_edge_media_serves_hls_itself(render, kinds):
    manifests = render({"hlsEdge": {"enabled": False}, "ingress": {"kind": "ingress"}})
    assert EDGE not in of_kind(manifests, "Deployment")
    (ingress,) = kinds(manifests, "Ingress").values()
    paths = {
        p["path"]: p["backend"]["service"]["name"]
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert paths["/hls/"] == f"{RELEASE}-media"


def test_the_edge_reaches_only_media_storage_and_dns(render):
    policies = of_kind(render("default"), "NetworkPolicy")
    edge = policies[EDGE]["spec"]
    (inbound,) = edge["ingress"]
    assert inbound["ports"] == [{"port": 8080, "protocol": "TCP"}]
    # The Gateway's data plane (Gateway API is the default; test_chart.py has both kinds).
    assert "envoy-gateway-system" in json.dumps(inbound["from"])
    assert "ingress-nginx" not in json.dumps(inbound["from"])
    targets = [
        rule["to"][0]
        .get("podSelector", {})
        .get("matchLabels", {})
        .get("app.kubernetes.io/component")
        for rule in edge["egress"]
    ]
    assert targets == [None, "media", "minio"]  # DNS first
    media_in = policies[f"{RELEASE}-media-from-hls-edge"]["spec"]["ingress"][0]
    assert (
        media_in["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        == "hls-edge"
    )
    # MinIO is named by its full name, which nginx's resolver can look up.
    config = of_kind(render("default"), "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert config["STUDIO_S3_ENDPOINT_URL"] == (
        f"http://{RELEASE}-minio.{RELEASE}.svc.cluster.local:9000"
    )


# --- the rendered config under a local nginx ------------------------------------------

SEGMENT = bytes(range(256)) * 64
TOKEN = "good-token"


class _Storage(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: bool) -> None:
        if not self.path.startswith("/bucket/hls/ep/v1/720p/seg-0.ts?sig="):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = 0, len(SEGMENT) - 1
        ranged = re.match(r"bytes=(\d+)-(\d+)$", self.headers.get("Range", ""))
        if ranged:
            start, end = int(ranged.group(1)), int(ranged.group(2))
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Length", str(end - start + 1))
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(SEGMENT)}")
        self.send_header("ETag", '"seg0"')
        self.send_header("Cache-Control", "public, max-age=86400")
        self.send_header("x-amz-request-id", "hidden")
        self.end_headers()
        if body:
            self.wfile.write(SEGMENT[start : end + 1])

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)


def _media(storage_port: int, seen: list[dict[str, str]]) -> type[BaseHTTPRequestHandler]:
    class Media(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            parts = self.path.split("/")  # /hls/<token>/ep/v1/<file...>
            if self.headers.get(HLS_EDGE_HEADER) != "storage" or parts[2] != TOKEN:
                body = json.dumps({"type": "urn:studio:problem:playback-token-invalid"}).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            key = "/".join(parts[3:])
            self.send_response(200)
            self.send_header("X-Accel-Redirect", HLS_STORAGE_LOCATION)
            self.send_header(
                HLS_STORAGE_URL_HEADER,
                f"http://127.0.0.1:{storage_port}/bucket/hls/{key}?sig=abc",
            )
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = _answer
        do_HEAD = _answer

    return Media


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def edge(render, tmp_path: Path) -> Iterator[tuple[int, list[dict[str, str]]]]:
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    seen: list[dict[str, str]] = []
    storage = _serve(_Storage)
    media = _serve(_media(storage.server_address[1], seen))
    manifests = render(
        {"hlsEdge": {"resolver": "127.0.0.1"}, "ingress": {"trustedProxies": ["127.0.0.1/32"]}}
    )
    conf = of_kind(manifests, "ConfigMap")[EDGE]["data"]["nginx.conf"]
    port = _free_port()
    conf = re.sub(r"server studio-media:\d+;", f"server 127.0.0.1:{media.server_address[1]};", conf)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("/tmp/", f"{tmp_path}/")  # noqa: S108 - the pod's /tmp
    path = tmp_path / "nginx.conf"
    path.write_text(conf, encoding="utf-8")
    log = (tmp_path / "nginx.log").open("wb")
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(path), "-e", "stderr", "-g", "daemon off;"],
        stdout=log,
        stderr=log,
    )
    try:
        assert wait_for_tcp("127.0.0.1", port, timeout=10), (tmp_path / "nginx.log").read_text()
        yield port, seen
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        media.shutdown()
        storage.shutdown()


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def test_the_rendered_edge_checks_the_token_and_serves_storages_bytes(edge):
    port, seen = edge
    segment = f"/hls/{TOKEN}/ep/v1/720p/seg-0.ts"
    status, headers, body = _request(port, "GET", segment, {"X-Forwarded-For": "203.0.113.9"})
    assert (status, body) == (200, SEGMENT)
    assert headers["etag"] == '"seg0"'
    assert headers["cache-control"] == "public, max-age=86400"
    assert "x-amz-request-id" not in headers
    # Media was asked to check only, and saw the viewer behind the trusted proxy.
    assert seen[-1][HLS_EDGE_HEADER.lower()] == "storage"
    assert seen[-1]["x-forwarded-for"] == "203.0.113.9"

    status, headers, body = _request(port, "GET", segment, {"Range": "bytes=10-19"})
    assert (status, body) == (206, SEGMENT[10:20])
    assert headers["content-range"] == f"bytes 10-19/{len(SEGMENT)}"
    status, headers, body = _request(port, "HEAD", segment)
    assert (status, body, headers["content-length"]) == (200, b"", str(len(SEGMENT)))


def test_the_rendered_edge_answers_problems(edge):
    port, _ = edge
    status, headers, body = _request(port, "GET", "/hls/forged/ep/v1/720p/seg-0.ts")
    assert status == 403
    assert json.loads(body)["type"] == "urn:studio:problem:playback-token-invalid"
    status, headers, body = _request(port, "GET", f"/hls/{TOKEN}/ep/v1/720p/missing.ts")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    for path in (HLS_STORAGE_LOCATION, "/api/titles"):
        status, headers, body = _request(port, "GET", path)
        assert status == 404, path
        assert json.loads(body)["type"] == "urn:studio:problem:not-found"
    status, _, body = _request(port, "GET", EDGE_HEALTH_PATH)
    assert (status, body) == (200, b"ok")
