"""The demo player: its image (deploy/player/Dockerfile) and generated nginx config,
checked without Docker, and the chart's `player` that runs it."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from http.client import HTTPResponse
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from studio_devstack.backing import wait_for_tcp
from studio_devstack.gateway import (
    GatewayOptions,
    content_security_policy,
    find_nginx,
    player_clerk_origin_map,
    player_config,
)

from .conftest import CHART, NAMESPACE, RELEASE, ROOT, VALUES, http_get, load_values, of_kind
from .test_chart import assert_hardened

PLAYER = ROOT / "web" / "player"
IMAGE = ROOT / "deploy" / "player"
DOCKERFILE = IMAGE / "Dockerfile"
NGINX_CONF = IMAGE / "nginx.conf"


def player_conf_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("player_nginx_conf", IMAGE / "nginx_conf.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_nginx_config_is_up_to_date():
    assert NGINX_CONF.read_text(encoding="utf-8") == player_conf_module().render(), (
        "regenerate: uv run --frozen python deploy/player/nginx_conf.py > deploy/player/nginx.conf"
    )


def test_the_image_is_unprivileged_nginx_with_the_config_and_every_file_the_page_loads():
    module = player_conf_module()
    instructions = dockerfile_instructions()
    # The base is a build argument whose default is the upstream unprivileged nginx.
    (base,) = [arg for op, arg in instructions if op == "FROM"]
    assert base == "${NGINX_IMAGE}"
    (default,) = [arg for op, arg in instructions if op == "ARG" and arg.startswith("NGINX_IMAGE=")]
    assert default.removeprefix("NGINX_IMAGE=").startswith("nginxinc/nginx-unprivileged:")
    copies = [shlex.split(arg) for op, arg in instructions if op == "COPY"]
    assert ["deploy/player/nginx.conf", "/etc/nginx/nginx.conf"] in copies
    root = str(module.ROOT_IN_IMAGE).rstrip("/") + "/"
    in_image: set[str] = set()
    for *sources, target in copies:
        if target.rstrip("/") + "/" == root:
            in_image |= {Path(s).name for s in sources}
        elif target.startswith(root):
            in_image |= {target.removeprefix(root).strip("/")}
    # What index.html loads (and index.html itself), by its path under /player/.
    page = (PLAYER / "index.html").read_text(encoding="utf-8")
    loaded = set(re.findall(r'(?:src|href)="/player/([^"]+)"', page)) | {"index.html"}
    assert {"app.js", "style.css", "vendor/hls.min.js"} <= loaded
    for path in loaded:
        assert (PLAYER / path).is_file(), path
        assert path in in_image or path.split("/", 1)[0] in in_image, path
    # Nothing but the player's files: not the generator, the Dockerfile or docs.
    assert not {"nginx_conf.py", "Dockerfile", "README.md", "nginx.conf"} & in_image
    assert ("EXPOSE", str(module.LISTEN_PORT)) in instructions
    # nginx alone, none of the base image's entrypoint scripts (they write to /etc/nginx).
    assert ("ENTRYPOINT", "[]") in instructions
    (cmd,) = [arg for op, arg in instructions if op == "CMD"]
    assert cmd.startswith('["nginx"')


def test_the_nginx_config_is_valid_nginx(tmp_path: Path):
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    module = player_conf_module()
    conf = NGINX_CONF.read_text(encoding="utf-8")
    assert f"pid {module.PlayerServerOptions.runtime_dir}/nginx.pid;" in conf
    # Its /tmp and files as they are here; nginx -t opens no listening socket.
    conf = re.sub(r"(?m)^(\s*(?:pid|\w+_temp_path)) /tmp/", rf"\1 {tmp_path}/", conf)
    conf = conf.replace(str(module.ROOT_IN_IMAGE), str(PLAYER))
    conf = conf.replace(str(module.CONFIG_DIR), str(tmp_path / "config"))
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    argv = [nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    result = subprocess.run(
        [*argv, "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- the chart's player ------------------------------------------------------------

CLERK_KEY = "pk_test_" + base64.b64encode(b"sweet-owl-12.clerk.accounts.dev$").decode().rstrip("=")


def player_objects(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Everything of this release named for the player, by kind."""
    return {
        m["kind"]: m for m in manifests if m["metadata"]["name"].startswith(f"{RELEASE}-player")
    }


# Production leaves the demo player out (its front-end has its own origin).
WITH_PLAYER = [v for v in VALUES if load_values(v).get("player", {}).get("enabled", True)]


def test_production_values_leave_the_player_out(render):
    assert "production" not in WITH_PLAYER
    assert player_objects(render("production")) == {}


@pytest.mark.parametrize("values", WITH_PLAYER)
def test_the_chart_runs_the_player_image_hardened_and_probed(render, values):
    module = player_conf_module()
    manifests = render(values)
    objects = player_objects(manifests)
    image = {
        "registry": "ghcr.io",
        "repository": "studio-anime",
        **load_values(values).get("image", {}),
    }
    registry = "/".join(p for p in (image["registry"], image["repository"]) if p)
    deployment, service = objects["Deployment"], objects["Service"]
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"].rsplit(":", 1)[0] == f"{registry}/studio-player"
    assert c["ports"] == [{"name": "http", "containerPort": module.LISTEN_PORT, "protocol": "TCP"}]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": module.LISTEN_PORT, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # Probed on a file nginx.conf serves, not on a route of another service.
    conf = NGINX_CONF.read_text(encoding="utf-8")
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/", "port": "http"}
    assert "location = / {" in conf
    assert "try_files /index.html =404;" in conf
    assert c["resources"]["requests"]["cpu"]
    assert c["resources"]["limits"]["memory"]
    assert_hardened(pod, c)
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]
    # Its ConfigMap where nginx.conf reads config.json and the Clerk origin.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    config_mount = mounts[str(module.CONFIG_DIR)]
    assert config_mount["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes[config_mount["name"]]["configMap"]["name"]
        == objects["ConfigMap"]["metadata"]["name"]
    )
    assert f"alias {module.CONFIG_DIR}/config.json;" in conf
    assert f"include {module.CONFIG_DIR}/*.map;" in conf


def test_the_player_config_is_built_from_values(render):
    default = player_objects(render("default"))
    assert json.loads(default["ConfigMap"]["data"]["config.json"]) == player_config(
        GatewayOptions(runtime_dir=Path("/unused"))
    )
    assert set(default["ConfigMap"]["data"]) == {"config.json"}

    clerk = player_objects(render({"player": {"clerkPublishableKey": CLERK_KEY}}))
    data = clerk["ConfigMap"]["data"]
    assert json.loads(data["config.json"]) == player_config(
        GatewayOptions(runtime_dir=Path("/unused"), clerk_publishable_key=CLERK_KEY)
    )
    assert data["clerk-origin.map"] == player_clerk_origin_map(CLERK_KEY)
    # nginx reads the origin when it starts: a new key rolls the pods.
    annotation = "checksum/config"
    assert (
        clerk["Deployment"]["spec"]["template"]["metadata"]["annotations"][annotation]
        != default["Deployment"]["spec"]["template"]["metadata"]["annotations"][annotation]
    )


def test_a_key_that_names_no_host_fails_the_install(helm):
    chart = helm.Chart.load(str(CHART))
    for key in ("pk_test_" + base64.b64encode(b"a;b$").decode(), "pk_live_abcd"):
        with pytest.raises(ValueError, match="publishable key"):
            player_clerk_origin_map(key)
        with pytest.raises(helm.HelmError, match=re.escape("player.clerkPublishableKey")):
            chart.render(
                {"player": {"clerkPublishableKey": key}}, name=RELEASE, namespace=NAMESPACE
            )


def test_only_the_edge_proxy_reaches_the_player(render):
    manifests = render("default")
    policy = of_kind(manifests, "NetworkPolicy")[f"{RELEASE}-player-from-ingress"]["spec"]
    deployment = player_objects(manifests)["Deployment"]
    assert policy["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    # The Gateway's data plane, with Gateway API (the default): test_chart.py has both kinds.
    assert rule["from"] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}
            },
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "envoy",
                    "app.kubernetes.io/component": "proxy",
                    "app.kubernetes.io/managed-by": "envoy-gateway",
                }
            },
        }
    ]
    assert rule["ports"] == [{"port": player_conf_module().LISTEN_PORT, "protocol": "TCP"}]
    # No egress beyond the default deny: it serves files and calls nothing.
    role = deployment["spec"]["template"]["metadata"]["labels"]["studio.anime/role"]
    for p in of_kind(manifests, "NetworkPolicy").values():
        if "Egress" in p["spec"]["policyTypes"] and p["spec"].get("egress"):
            selector = p["spec"]["podSelector"]
            assert selector.get("matchLabels", {}).get("app.kubernetes.io/component") != "player"
            for expression in selector.get("matchExpressions", []):
                if expression["key"] == "studio.anime/role":
                    assert role not in expression["values"]


def test_player_disabled_removes_it_and_its_ingress_path(render, route_table):
    manifests = render({"player": {"enabled": False}})
    assert player_objects(manifests) == {}
    assert not [m for m in manifests if "player" in m["metadata"]["name"]]
    rules = of_kind(manifests, "HTTPRoute")[f"{RELEASE}-api"]["spec"]["rules"]
    assert "/" not in [m["path"]["value"] for r in rules for m in r["matches"]]
    assert len(rules) == len(route_table["routes"])
    manifests = render({"player": {"enabled": False}, "ingress": {"kind": "ingress"}})
    (rule,) = of_kind(manifests, "Ingress")[f"{RELEASE}-api"]["spec"]["rules"]
    paths = rule["http"]["paths"]
    assert "/" not in [p["path"] for p in paths]
    assert len(paths) == len(route_table["routes"])


# --- the chart's ConfigMap in the image's nginx -------------------------------------


@pytest.mark.parametrize("key", ["", CLERK_KEY])
def test_the_image_config_with_the_chart_configmap_sends_the_gateway_headers(
    render, tmp_path: Path, key: str
):
    """deploy/player/nginx.conf as the image runs it, with the files of the ConfigMap the
    chart renders for `key`: the page's CSP and config.json are the local gateway's."""
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    module = player_conf_module()
    data = player_objects(render({"player": {"clerkPublishableKey": key}}))["ConfigMap"]["data"]
    # Outside pytest's private tmp dir: nginx started as root reads files as nobody.
    config_dir = Path(tempfile.mkdtemp(prefix="studio-player-config-"))
    config_dir.chmod(0o755)
    for name, content in data.items():
        (config_dir / name).write_text(content, encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = NGINX_CONF.read_text(encoding="utf-8")
    conf = re.sub(r"(?m)^(\s*(?:pid|\w+_temp_path)) /tmp/", rf"\1 {tmp_path}/", conf)
    conf = conf.replace(str(module.ROOT_IN_IMAGE), str(PLAYER))
    conf = conf.replace(str(module.CONFIG_DIR), str(config_dir))
    conf = conf.replace(f"listen {module.LISTEN_PORT};", f"listen 127.0.0.1:{port};")
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    log = (tmp_path / "nginx.log").open("wb")
    argv = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"]
    proc = subprocess.Popen([*argv, "-g", "daemon off;"], stdout=log, stderr=log)
    try:
        assert wait_for_tcp("127.0.0.1", port, timeout=10), (tmp_path / "nginx.log").read_text()
        status, headers, body = http_get(port, "/")
        assert status == 200
        assert body == (PLAYER / "index.html").read_bytes()
        assert headers["content-security-policy"] == content_security_policy(key)
        status, headers, body = http_get(port, "/player/config.json")
        assert status == 200
        assert headers["content-type"].startswith("application/json")
        options = GatewayOptions(runtime_dir=Path("/unused"), clerk_publishable_key=key)
        assert json.loads(body) == player_config(options)
        # nginx's own errors are problems here too, as at the gateway.
        hostile = {
            431: b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 100 * 1024 + b"\r\n\r\n",
            400: b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
            405: b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n",
        }
        for expected, raw in hostile.items():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(raw)
                reply = HTTPResponse(conn)
                reply.begin()
                assert reply.status == expected, reply.read()[:200]
                assert reply.getheader("content-type") == "application/problem+json"
                assert json.loads(reply.read())["status"] == expected
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(config_dir)


def test_the_vendored_ass_renderer_needs_no_build_step() -> None:
    """jassub's ES modules, as scripts/vendor-jassub.sh leaves them: every import
    is a relative path to a vendored file (a bare package name would need a
    bundler), and nothing is CommonJS."""
    vendored = PLAYER / "vendor" / "jassub"
    modules = sorted(vendored.rglob("*.js"))
    assert vendored / "jassub.js" in modules
    assert vendored / "worker" / "worker.js" in modules
    specifier = re.compile(
        r"""(?:^|\s)(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|^import\s+['"]([^'"]+)['"]""",
        re.M,
    )
    imports = 0
    for module in modules:
        text = module.read_text(encoding="utf-8")
        assert "module.exports" not in text, module
        for match in specifier.finditer(text):
            imports += 1
            target = match.group(1) or match.group(2)
            assert target.startswith("./") or target.startswith("../"), (module, target)
            assert (module.parent / target).resolve().is_file(), (module, target)
    assert imports >= 10  # the pattern finds them: jassub.js alone has four
    for binary in ("wasm/jassub-worker.wasm", "wasm/jassub-worker-modern.wasm", "default.woff2"):
        assert (vendored / binary).stat().st_size > 10_000, binary
    assert (PLAYER / "vendor" / "fonts" / "DroidSansFallback.woff2").read_bytes()[:4] == b"wOF2"
