"""The in-cluster HLS edge's nginx config (the chart's `hlsEdge`), generated.

    uv run --frozen python deploy/helm/hls_edge_conf.py > deploy/helm/studio/files/hls-edge.conf

The same code as the local and compose gateways renders it (ADR 8): media checks
the token and answers X-Accel-Redirect, nginx fetches the bytes from storage.
What only the install knows (media's Service, the cluster's DNS, the proxies
in front) are placeholders the chart replaces (templates/hls-edge.yaml);
deploy/tests/test_hls_edge.py fails when the checked-in file is out of date and
checks that the chart's substitution gives what the generator gives for those
values.
"""

from __future__ import annotations

import sys
from pathlib import Path

from studio_devstack.gateway import EdgeServerOptions, render_hls_edge_nginx_conf
from studio_devstack.routes import ROUTES_RELATIVE_PATH, load_route_table

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "deploy" / "helm" / "studio" / "files" / "hls-edge.conf"
LISTEN_PORT = 8080
# Replaced by templates/hls-edge.yaml; the proxy line once per trusted address.
UPSTREAM = "__STUDIO_MEDIA_UPSTREAM__"
RESOLVER = "__STUDIO_RESOLVER__"
TRUSTED_PROXY = "__STUDIO_TRUSTED_PROXY__"


def options(
    upstream: str = UPSTREAM, resolver: str = RESOLVER, trusted_proxies: tuple[str, ...] = ()
) -> EdgeServerOptions:
    return EdgeServerOptions(
        upstream=upstream,
        resolver=resolver,
        trusted_proxies=trusted_proxies or (TRUSTED_PROXY,),
        listen=str(LISTEN_PORT),
    )


def render(
    upstream: str = UPSTREAM, resolver: str = RESOLVER, trusted_proxies: tuple[str, ...] = ()
) -> str:
    table = load_route_table(ROOT / ROUTES_RELATIVE_PATH)
    return render_hls_edge_nginx_conf(table, options(upstream, resolver, trusted_proxies))


if __name__ == "__main__":
    sys.stdout.write(render())
