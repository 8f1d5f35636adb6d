"""The Helm chart, rendered offline with Helm's library and checked against the
Kubernetes schemas of a pinned version, plus what the platform promises: the
route table, hardened pods, credentials only by reference, drainable workers,
a least-privilege operator and network policies."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from studio_devstack.routes import Match, load_route_table

from .conftest import CHART, NAMESPACE, RELEASE, VALUES, load_values, of_kind

# The Kubernetes version CI's kind cluster runs (.github/workflows/ci.yml).
KUBERNETES_VERSION = "1.33.0"
VALUE_SETS = list(VALUES)
CREDENTIAL = re.compile(r"PASSWORD|SECRET|SIGNING_KEY|PRIVATE_KEY$|DATABASE_URL|ACCESS_KEY_ID")
CRD_FILE = CHART / "crds" / "transcoderautoscalers.studio.anime.yaml"


def container(workload: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][index]


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def services_of(table: dict[str, Any]) -> dict[str, int]:
    return {name: spec["port"] for name, spec in table["services"].items()}


# --- Helm's own checks ------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_is_clean(helm, values):
    report = helm.lint(
        str(CHART), load_values(values), strict=True, kube_version=f"v{KUBERNETES_VERSION}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"transcoderWorker": {"autoscaler": {"maxReplicas": "four"}}}, "maxReplicas"),
        ({"config": {"MEDIA_PLAYBACK_SIGNING_KEY": "inline"}}, "MEDIA_PLAYBACK_SIGNING_KEY"),
        ({"services": {"media": {"env": {"STUDIO_DATABASE_URL": "x"}}}}, "STUDIO_DATABASE_URL"),
        ({"secretEnv": {"STUDIO_DATABASE_URL": "postgresql://u:p@h/db"}}, "secretEnv"),
        ({"nats": {"enabled": False}}, "/nats/url"),
        ({"environment": "staging"}, "environment"),
        ({"ingress": {"trustedProxies": ["gateway"]}}, "trustedProxies"),
        ({"ingress": {"corsOrigins": ["*"]}}, "corsOrigins"),
        ({"player": {"clerkPublishableKey": "sk_test_abc"}}, "clerkPublishableKey"),
        ({"typo": True}, "typo"),
    ],
)
def test_the_values_schema_rejects_mistakes(helm, values, message):
    chart = helm.Chart.load(str(CHART))
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    "secret_env",
    [
        {"IDENTITY_CLERK_SECRET_KEY": None},
        {
            "IDENTITY_CLERK_SECRET_KEY": {
                "secret": "studio-identity",
                "key": "clerk-secret-key",
                "optional": True,
            }
        },
    ],
)
def test_production_needs_the_clerk_write_back(helm, secret_env):
    chart = helm.Chart.load(str(CHART))
    values = load_values("production")
    values["services"]["identity"]["secretEnv"] = secret_env
    with pytest.raises(helm.HelmError, match="IDENTITY_CLERK_SECRET_KEY"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_the_clerk_secret_key_is_not_optional(render, values):
    identity = of_kind(render(values), "Deployment")[f"{RELEASE}-identity"]
    ref = env_of(container(identity))["IDENTITY_CLERK_SECRET_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "studio-identity"
    assert not ref.get("optional", False)


# --- valid Kubernetes objects ---------------------------------------------------------


def addon_schema(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """deploy/helm/schemas/: the Gateway API, Prometheus Operator and KEDA kinds."""
    group, _, version = manifest["apiVersion"].rpartition("/")
    path = CHART.parent / "schemas" / f"{group}_{version}_{manifest['kind']}.json"
    if not group or not path.is_file():
        return None
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return _as_json_schema(copy.deepcopy(schema))


def _as_json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema as JSON Schema: `nullable` becomes a null type,
    Kubernetes extensions are dropped."""
    if isinstance(node, dict):
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        for key in [k for k in node if k.startswith("x-kubernetes-")]:
            del node[key]
        return {k: _as_json_schema(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_as_json_schema(v) for v in node]
    return node


def test_the_crd_is_a_valid_kubernetes_object():
    crd = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"
    assert version["subresources"] == {"status": {}}
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]) >= {
        "targetDeployment",
        "stream",
        "consumer",
        "natsUrl",
        "minReplicas",
        "maxReplicas",
        "jobsPerReplica",
        "scaleDownCooldownSeconds",
    }


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_rendered_manifest_is_valid(render, values):
    manifests = render(values)
    assert manifests
    custom = crd_schema()
    for manifest in manifests:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["apiVersion"] == "studio.anime/v1alpha1":
            jsonschema.validate(manifest, custom)
            continue
        addon = addon_schema(manifest)
        if addon is not None:
            jsonschema.validate(manifest, addon)
            assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE, where
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE, where


@pytest.mark.parametrize("values", VALUE_SETS)
def test_an_upgrade_renders_too(render, values):
    assert render(values, is_upgrade=True)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_names_are_unique_per_kind(render, values):
    seen = [(m["kind"], m["metadata"]["name"]) for m in render(values)]
    assert len(seen) == len(set(seen))


# --- the route table -----------------------------------------------------------------


# The player's Service port (deploy/player/nginx_conf.py LISTEN_PORT; test_player.py).
PLAYER_PORT = 8080


def ingress_path(route: dict[str, str]) -> str:
    if route["match"] == "exact":
        return route["path"] + "$"
    if route["match"] == "regex":
        return route["path"].removeprefix("^")
    return route["path"] if route["path"].endswith("/") else route["path"] + "(/|$)"


def with_values(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A values file with some values changed (deep merge)."""

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    return merge(load_values(name), overrides)


EDGE_PORT = 8080  # deploy/helm/hls_edge_conf.py LISTEN_PORT


def route_backend(route: dict[str, str], ports: dict[str, int]) -> tuple[str, int]:
    """Where the chart sends a route: /hls/ through the in-cluster HLS edge (ADR 8)."""
    if route["path"] == "/hls/" and route["match"] == "prefix":
        return f"{RELEASE}-hls-edge", EDGE_PORT
    return f"{RELEASE}-{route['service']}", ports[route["service"]]


def httproute_match(route: dict[str, str]) -> dict[str, str]:
    if route["match"] == "exact":
        return {"type": "Exact", "value": route["path"]}
    if route["match"] == "regex":
        return {"type": "RegularExpression", "value": route["path"]}
    return {"type": "PathPrefix", "value": route["path"].rstrip("/")}


def test_the_gateway_api_is_the_default_and_ingress_an_option(render, kinds):
    default = render("default")
    assert set(kinds(default, "HTTPRoute")) == {f"{RELEASE}-api"}
    assert kinds(default, "Ingress") == {}
    route = kinds(default, "HTTPRoute")[f"{RELEASE}-api"]["spec"]
    assert route["parentRefs"] == [{"name": "studio"}]
    assert route["hostnames"] == ["studio.localhost"]
    # The Ingress keeps working, its class configurable.
    ingress = render({"ingress": {"kind": "ingress", "className": "traefik"}})
    assert kinds(ingress, "HTTPRoute") == {}
    assert kinds(ingress, "Ingress")[f"{RELEASE}-api"]["spec"]["ingressClassName"] == "traefik"
    # A Gateway of the chart's own when a class is named, HTTPS with the TLS secret.
    own = render({"ingress": {"gateway": {"className": "eg"}, "tlsSecret": "api-tls"}})
    gateway = kinds(own, "Gateway")[RELEASE]["spec"]
    assert gateway["gatewayClassName"] == "eg"
    assert [(lis["protocol"], lis["port"]) for lis in gateway["listeners"]] == [
        ("HTTP", 80),
        ("HTTPS", 443),
    ]
    assert gateway["listeners"][1]["tls"]["certificateRefs"] == [
        {"kind": "Secret", "name": "api-tls"}
    ]
    assert kinds(own, "HTTPRoute")[f"{RELEASE}-api"]["spec"]["parentRefs"] == [{"name": RELEASE}]


@pytest.mark.parametrize("kind", ["gateway", "ingress"])
@pytest.mark.parametrize("values", VALUE_SETS)
def test_edge_paths_are_the_route_table(render, route_table, values, kind):
    manifests = render(with_values(values, {"ingress": {"kind": kind}}))
    ports = services_of(route_table)
    player = load_values(values).get("player", {}).get("enabled", True)
    if kind == "ingress":
        ingress = of_kind(manifests, "Ingress")[f"{RELEASE}-api"]
        (rule,) = ingress["spec"]["rules"]
        rendered = [
            (
                p["path"],
                p["pathType"],
                p["backend"]["service"]["name"],
                p["backend"]["service"]["port"]["number"],
            )
            for p in rule["http"]["paths"]
        ]
        expected = [
            (ingress_path(r), "ImplementationSpecific", *route_backend(r, ports))
            for r in route_table["routes"]
        ]
        # Then the player, for every path no route claims, where it is installed.
        if player:
            expected.append(("/", "Prefix", f"{RELEASE}-player", PLAYER_PORT))
        assert rendered == expected
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] == "true"
        return
    spec = of_kind(manifests, "HTTPRoute")[f"{RELEASE}-api"]["spec"]
    rendered_rules = [
        (rule["matches"], [(b["name"], b["port"]) for b in rule["backendRefs"]])
        for rule in spec["rules"]
    ]
    expected_rules = [
        ([{"path": httproute_match(r)}], [route_backend(r, ports)]) for r in route_table["routes"]
    ]
    if player:
        expected_rules.append(
            ([{"path": {"type": "PathPrefix", "value": "/"}}], [(f"{RELEASE}-player", PLAYER_PORT)])
        )
    assert rendered_rules == expected_rules


def _gateway_route(table: Any, path: str, *, player: bool = True) -> str | None:
    """What the local gateway (nginx from studio-dev) does: exact locations (a prefix
    route without a trailing slash has one for itself), then regexes in order, then
    the longest prefix. With the player (as `make up` runs it), `= /` and
    `^~ /player/` are its own, and `location /` answers the rest with the same 404
    problem as the player's server: "player" in both places."""
    exact = {r.path: r.service for r in table.routes if r.match is Match.EXACT}
    exact |= {
        r.path: r.service
        for r in table.routes
        if r.match is Match.PREFIX and not r.path.endswith("/")
    }
    if path in exact:
        return exact[path]
    prefixes = [
        (r.path if r.path.endswith("/") else r.path + "/", r.service)
        for r in table.routes
        if r.match is Match.PREFIX
    ]
    if player:
        if path == "/":
            return "player"
        # ^~: the longest prefix, when it is the player's, skips the regexes.
        longest = max((p for p, _ in prefixes if path.startswith(p)), key=len, default="")
        if path.startswith("/player/") and len(longest) <= len("/player/"):
            return "player"
    for r in table.routes:
        if r.match is Match.REGEX and re.search(r.path, path):
            return r.service
    matching = [(p, s) for p, s in prefixes if path.startswith(p)]
    if matching:
        return max(matching, key=lambda m: len(m[0]))[1]
    return "player" if player else None


def _ingress_route(paths: list[tuple[str, str]], path: str) -> str | None:
    """What ingress-nginx does with use-regex: `location ~* "^<path>"` for every path,
    ordered by descending length (ties: descending path), first match wins."""
    ordered = sorted(paths, key=lambda p: p[0], reverse=True)
    ordered.sort(key=lambda p: len(p[0]), reverse=True)
    for pattern, service in ordered:
        if re.match("^" + pattern, path, re.IGNORECASE):
            return service
    return None


def _samples(table: Any) -> set[str]:
    samples = {"/", "/api", "/api/", "/api/unknown", "/hls", "/metrics", "/healthz"}
    samples |= {"/index.html", "/player", "/player/", "/player/app.js", "/player/config.json"}
    samples |= {"/player/vendor/hls.min.js", "/player/api/titles", "/playerx"}
    for r in table.routes:
        base = r.path
        if r.match is Match.REGEX:
            base = r.path.strip("^$").replace("[^/]+", "0f3c")
        stem = base.rstrip("/")
        samples |= {base, stem, stem + "/", stem + "/x", stem + "/x/y", stem + "x", stem + "-x"}
    return samples


def _httproute_route(rules: list[tuple[dict[str, str], str]], path: str) -> str | None:
    """What a Gateway API implementation does: an Exact match first, then the
    RegularExpression matches (full match, RE2), then the longest PathPrefix matched
    element-wise (/api/titles covers /api/titles/x, not /api/titlesx). The spec leaves
    regex precedence to the implementation; Envoy Gateway and Istio rank it above
    prefixes, which this chart needs (deploy/helm/README.md)."""
    for match, service in rules:
        if match["type"] == "Exact" and match["value"] == path:
            return service
    for match, service in rules:
        if match["type"] == "RegularExpression" and re.fullmatch(match["value"], path):
            return service
    prefixes = [
        (m["value"], s)
        for m, s in rules
        if m["type"] == "PathPrefix"
        and (m["value"] == "/" or path == m["value"] or path.startswith(m["value"] + "/"))
    ]
    return max(prefixes, key=lambda p: len(p[0]))[1] if prefixes else None


def _edge_answer(backend: str | None, path: str, player: bool) -> str | None:
    """The HLS edge proxies /hls/ to media (deploy/tests/test_hls_edge.py) and answers
    any other path with the same 404 problem as the player's server: the gateway's
    `location /` ("player" or no route, as _gateway_route says)."""
    if backend != "hls-edge":
        return backend
    if path.startswith("/hls/"):
        return "media"
    return "player" if player else None


@pytest.mark.parametrize("kind", ["gateway", "ingress"])
@pytest.mark.parametrize("player", [True, False])
def test_the_edge_routes_every_path_like_the_gateway(render, player, kind):
    table = load_route_table(CHART / "routes.yaml")
    manifests = render({"player": {"enabled": player}, "ingress": {"kind": kind}})
    if kind == "ingress":
        ingress = of_kind(manifests, "Ingress")[f"{RELEASE}-api"]
        paths = [
            (p["path"], p["backend"]["service"]["name"].removeprefix(f"{RELEASE}-"))
            for p in ingress["spec"]["rules"][0]["http"]["paths"]
        ]

        def edge(path: str) -> str | None:
            return _edge_answer(_ingress_route(paths, path), path, player)
    else:
        spec = of_kind(manifests, "HTTPRoute")[f"{RELEASE}-api"]["spec"]
        rules = [
            (m["path"], rule["backendRefs"][0]["name"].removeprefix(f"{RELEASE}-"))
            for rule in spec["rules"]
            for m in rule["matches"]
        ]

        def edge(path: str) -> str | None:
            return _edge_answer(_httproute_route(rules, path), path, player)

    samples = _samples(table)
    assert len(samples) > 60
    disagree = {
        path: (_gateway_route(table, path, player=player), edge(path))
        for path in sorted(samples)
        if _gateway_route(table, path, player=player) != edge(path)
    }
    assert disagree == {}
    # The regex route really wins over the longer catalog prefix in both.
    assert edge("/api/episodes/1/hls") == "media"
    assert edge("/api/episodes/1") == "catalog"
    # Segments and playlists go through the HLS edge.
    assert edge("/hls/t/e/v/720p/seg-00001.ts") == "media"
    # The player has the page and its files, and nothing a route claims.
    for path in ("/", "/player/app.js", "/player/config.json", "/nope"):
        assert edge(path) == ("player" if player else None), path
    for r in table.routes:
        if r.match is not Match.REGEX:
            assert edge(r.path) == r.service, r.path


def test_cors_origins_become_ingress_annotations_or_the_httproute_filter(render):
    annotations = of_kind(render("dev"), "Ingress")[f"{RELEASE}-api"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/enable-cors"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/cors-allow-origin"] == (
        "http://localhost:3000, http://127.0.0.1:3000, http://localhost:5173"
    )
    # The same policy on every HTTPRoute rule (production is gateway by default).
    spec = of_kind(render("production"), "HTTPRoute")[f"{RELEASE}-api"]["spec"]
    for rule in spec["rules"]:
        (cors,) = [f["cors"] for f in rule["filters"] if f["type"] == "CORS"]
        assert cors["allowOrigins"] == ["https://studio.example"]
        assert cors["allowCredentials"] is True
        assert "Range" in cors["allowHeaders"]


# --- the services -------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_one_deployment_service_and_account_per_route_table_service(render, route_table, values):
    manifests = render(values)
    ports = services_of(route_table)
    deployments = of_kind(manifests, "Deployment")
    services = of_kind(manifests, "Service")
    accounts = of_kind(manifests, "ServiceAccount")
    for name, port in ports.items():
        full = f"{RELEASE}-{name}"
        c = container(deployments[full])
        assert c["args"] == [
            "python",
            "-m",
            f"studio_{name}",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
        ]
        assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert services[full]["spec"]["ports"][0]["port"] == port
        assert deployments[full]["spec"]["template"]["spec"]["serviceAccountName"] == full
        assert full in accounts


@pytest.mark.parametrize("values", VALUE_SETS)
def test_api_pods_are_probed_limited_and_hardened(render, route_table, values):
    deployments = of_kind(render(values), "Deployment")
    for name in services_of(route_table):
        d = deployments[f"{RELEASE}-{name}"]
        pod = d["spec"]["template"]["spec"]
        c = container(d)
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["resources"]["requests"]["cpu"]
        assert c["resources"]["limits"]["memory"]
        assert_hardened(pod, c)
        assert {"configMapRef": {"name": f"{RELEASE}-config"}} in c["envFrom"]


def assert_hardened(pod: dict[str, Any], c: dict[str, Any]) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 - a mount path, not a file


@pytest.mark.parametrize("values", VALUE_SETS)
def test_credentials_are_referenced_never_inlined(render, values):
    manifests = render(values)
    assert not of_kind(manifests, "Secret"), "the chart must not carry Secrets"
    referenced: set[str] = set()
    for manifest in manifests:
        template = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for c in template.get("containers", []) + template.get("initContainers", []):
            for name, entry in env_of(c).items():
                if CREDENTIAL.search(name):
                    assert "value" not in entry, f"{manifest['metadata']['name']}: {name}"
                    referenced.add(entry["valueFrom"]["secretKeyRef"]["name"])
    for name in of_kind(manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]:
        assert not CREDENTIAL.search(name), name
    assert "studio-database" in referenced
    if values != "production":
        assert {"studio-s3", "studio-media"} <= referenced


@pytest.mark.parametrize(
    ("values", "environment", "public_base_url"),
    [
        ("default", "production", "http://studio.localhost"),
        ("dev", "development", "http://studio.localhost:8080"),
        ("production", "production", "https://api.studio.example"),
    ],
)
def test_production_unless_development_is_asked_for(render, values, environment, public_base_url):
    """The base values fail closed; media's URLs name a configured host and the
    services believe X-Forwarded-For from the ingress controller's range only."""
    config = of_kind(render(values), "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert config["STUDIO_ENVIRONMENT"] == environment
    assert config["MEDIA_PUBLIC_BASE_URL"] == public_base_url
    assert config["STUDIO_TRUSTED_PROXIES"] == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"


def test_audience_and_trusted_proxies_come_from_values(render):
    config = of_kind(
        render(
            {
                "auth": {"audience": "studio-api"},
                "ingress": {"trustedProxies": ["10.244.0.0/16"], "tlsSecret": "tls"},
            }
        ),
        "ConfigMap",
    )[f"{RELEASE}-config"]["data"]
    assert config["STUDIO_JWT_AUDIENCE"] == "studio-api"
    assert config["STUDIO_TRUSTED_PROXIES"] == "10.244.0.0/16"
    assert config["MEDIA_PUBLIC_BASE_URL"] == "https://studio.localhost"


@pytest.mark.parametrize("values", VALUE_SETS)
def test_production_shape(render, values):
    """HPA + PDB for every API in production; none in development, where one
    replica each would make a PDB block node drains."""
    manifests = render(values)
    hpas, pdbs = (
        of_kind(manifests, "HorizontalPodAutoscaler"),
        of_kind(manifests, "PodDisruptionBudget"),
    )
    deployments = of_kind(manifests, "Deployment")
    table = yaml.safe_load((CHART / "routes.yaml").read_text(encoding="utf-8"))
    apis = {f"{RELEASE}-{name}" for name in table["services"]}
    if values == "production":
        assert set(hpas) == apis
        # The JetStream cluster and the HLS edge run several replicas too.
        assert set(pdbs) == apis | {f"{RELEASE}-nats", f"{RELEASE}-hls-edge"}
        for name in apis:
            assert "replicas" not in deployments[name]["spec"], "the HPA owns replicas"
            assert hpas[name]["spec"]["minReplicas"] >= 2
        assert not {"StatefulSet/studio-postgres", "StatefulSet/studio-minio"} & {
            f"{m['kind']}/{m['metadata']['name']}" for m in manifests
        }
        config = of_kind(manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]
        assert config["STUDIO_ENVIRONMENT"] == "production"
        assert config["STUDIO_JWKS_URL"].startswith("https://")
        assert "STUDIO_S3_ENDPOINT_URL" not in config
    else:
        assert hpas == {}
        assert pdbs == {}
        kinds = {f"{m['kind']}/{m['metadata']['name']}" for m in manifests}
        assert {
            "StatefulSet/studio-nats",
            "StatefulSet/studio-postgres",
            "StatefulSet/studio-minio",
            "Deployment/studio-redis",
        } <= kinds


# --- migrations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "hook"),
    [
        ("default", "post-install,pre-upgrade"),
        ("dev", "post-install,pre-upgrade"),
        ("production", "pre-install,pre-upgrade"),
    ],
)
def test_a_migration_job_per_service_runs_as_a_hook(render, route_table, values, hook):
    jobs = of_kind(render(values), "Job")
    for name in services_of(route_table):
        job = jobs[f"{RELEASE}-{name}-migrate"]
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == hook
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        c = container(job)
        command = " ".join(c["args"])
        assert f"python -m studio_{name} migrate" in command
        # Hooks may run before the ConfigMap exists: settings inline, never envFrom.
        assert "envFrom" not in c
        env = env_of(c)
        assert env["STUDIO_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"
        assert "STUDIO_ENVIRONMENT" in env
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert_hardened(job["spec"]["template"]["spec"], c)


def test_dev_seeds_the_catalog_after_migrating(render):
    job = of_kind(render("dev"), "Job")[f"{RELEASE}-catalog-migrate"]
    assert container(job)["args"] == [
        "sh",
        "-c",
        "python -m studio_catalog migrate && python -m studio_catalog seed",
    ]


# --- the transcoder workers and their autoscaler ----------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_the_worker_drains_before_kubernetes_kills_it(render, values):
    manifests = render(values)
    worker = of_kind(manifests, "Deployment")[f"{RELEASE}-transcoder-worker"]
    pod = worker["spec"]["template"]["spec"]
    c = container(worker)
    assert c["args"] == ["python", "-m", "studio_transcoder", "worker"]
    grace = float(env_of(c)["TRANSCODER_SHUTDOWN_GRACE_SECONDS"]["value"])
    assert grace >= 60
    # Time to nak the job and close connections after the grace runs out.
    assert pod["terminationGracePeriodSeconds"] >= grace + 30
    assert_hardened(pod, c)
    # The operator owns the replicas; an upgrade must not reset them.
    assert "replicas" not in worker["spec"]
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("values", VALUE_SETS)
def test_the_worker_liveness_asks_its_consumer(render, values):
    """An open port says nothing of a fetch loop that stopped; /healthz does."""
    c = container(of_kind(render(values), "Deployment")[f"{RELEASE}-transcoder-worker"])
    probe = c["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert probe["port"] in ports
    assert str(ports[probe["port"]]) == env_of(c)["TRANSCODER_WORKER_METRICS_PORT"]["value"]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_the_autoscaler_targets_the_worker_queue(render, values):
    manifests = render(values)
    if not load_values(values).get("operator", {}).get("enabled", True):
        # KEDA scales them (values-keda.yaml; test_cluster_ops.py).
        assert of_kind(manifests, "ScaledObject")
        return
    (autoscaler,) = of_kind(manifests, "TranscoderAutoscaler").values()
    spec = autoscaler["spec"]
    assert spec["targetDeployment"] == f"{RELEASE}-transcoder-worker"
    assert spec["targetDeployment"] in of_kind(manifests, "Deployment")
    assert spec["stream"] == "STUDIO"
    # The worker's durable names (studio_transcoder.worker.durable_name).
    assert spec["consumer"] == "transcoder-worker-catalog-episode-uploaded"
    assert spec["additionalConsumers"] == [
        "transcoder-worker-transcoder-job-retry_requested",
        "transcoder-worker-transcoder-part-requested",
    ]
    config = of_kind(manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert spec["natsUrl"] == config["STUDIO_NATS_URL"]
    worker = container(of_kind(manifests, "Deployment")[spec["targetDeployment"]])
    assert env_of(worker)["TRANSCODER_WORKER_CONCURRENCY"]["value"] == str(spec["jobsPerReplica"])
    assert spec["minReplicas"] <= spec["maxReplicas"]


def test_without_the_operator_the_worker_has_fixed_replicas(render):
    manifests = render({"operator": {"enabled": False}, "transcoderWorker": {"replicas": 3}})
    worker = of_kind(manifests, "Deployment")[f"{RELEASE}-transcoder-worker"]
    assert worker["spec"]["replicas"] == 3
    assert of_kind(manifests, "TranscoderAutoscaler") == {}
    assert f"{RELEASE}-operator" not in of_kind(manifests, "Deployment")


def test_the_operator_has_least_privilege(render):
    manifests = render("default")
    assert of_kind(manifests, "ClusterRole") == {}
    assert of_kind(manifests, "ClusterRoleBinding") == {}
    role = of_kind(manifests, "Role")[f"{RELEASE}-operator"]
    rules = {
        (r["apiGroups"][0], r["resources"][0], tuple(r.get("resourceNames", ()))): set(r["verbs"])
        for r in role["rules"]
    }
    assert rules == {
        ("studio.anime", "transcoderautoscalers", ()): {"get", "list", "watch", "patch"},
        ("studio.anime", "transcoderautoscalers/status", ()): {"get", "patch"},
        ("apps", "deployments/scale", (f"{RELEASE}-transcoder-worker",)): {"get", "patch"},
        ("", "events", ()): {"create"},
        # Busy workers marked (pod-deletion-cost, do-not-disrupt): studio_operator.busy.
        ("", "pods", ()): {"list", "patch"},
    }
    binding = of_kind(manifests, "RoleBinding")[f"{RELEASE}-operator"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-operator", "namespace": NAMESPACE}
    ]
    operator = of_kind(manifests, "Deployment")[f"{RELEASE}-operator"]
    pod = operator["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"{RELEASE}-operator"
    assert operator["spec"]["strategy"]["type"] == "Recreate"
    c = container(operator)
    assert c["args"] == ["python", "-m", "studio_operator"]
    assert env_of(c)["OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.namespace"
    )
    assert_hardened(pod, c)
    # Nothing else gets an API token.
    for name, d in of_kind(manifests, "Deployment").items():
        if name != f"{RELEASE}-operator":
            assert d["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


# --- network policies ----------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_only_the_edge_proxy_reaches_the_apis(render, route_table, values):
    policies = of_kind(render(values), "NetworkPolicy")
    deny = policies[f"{RELEASE}-default-deny"]["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny

    api_ingress = {
        name: p["spec"]
        for name, p in policies.items()
        if p["spec"]["podSelector"].get("matchLabels", {}).get("studio.anime/role") == "api"
        and "Ingress" in p["spec"]["policyTypes"]
    }
    # The edge proxy, and the metrics scraper (test_cluster_ops.py).
    assert set(api_ingress) == {f"{RELEASE}-apis-from-ingress", f"{RELEASE}-apis-from-scraper"}
    spec = api_ingress[f"{RELEASE}-apis-from-ingress"]
    (rule,) = spec["ingress"]
    kind = {**{"kind": "gateway"}, **load_values(values).get("ingress", {})}["kind"]
    assert rule["from"] == [EDGE_PEERS[kind]]
    assert {p["port"] for p in rule["ports"]} == set(services_of(route_table).values())

    # Identity's JWKS: only this release's services and workers.
    jwks = policies[f"{RELEASE}-identity-jwks"]["spec"]["ingress"][0]["from"][0]["podSelector"]
    assert {"key": "studio.anime/role", "operator": "In", "values": ["api", "worker"]} in (
        jwks["matchExpressions"]
    )


# The chart's defaults: Envoy Gateway's proxies (kind: gateway), ingress-nginx (kind: ingress).
EDGE_PEERS = {
    "gateway": {
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
    },
    "ingress": {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
    },
}


def edge_sources(manifests: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Who may reach the APIs, the player and the HLS edge, per policy."""
    policies = of_kind(manifests, "NetworkPolicy")
    return {
        part: policies[f"{RELEASE}-{part}"]["spec"]["ingress"][0]["from"]
        for part in ("apis-from-ingress", "player-from-ingress", "hls-edge")
    }


@pytest.mark.parametrize("kind", ["gateway", "ingress"])
def test_the_edge_policies_follow_the_route_kind(render, kind):
    """The Gateway's data plane is let in with Gateway API, the Ingress controller
    with an Ingress, never the other one; MinIO's Ingress is always reached
    through the Ingress controller."""
    manifests = render({"ingress": {"kind": kind}, "minio": {"ingress": {"enabled": True}}})
    assert edge_sources(manifests) == {part: [EDGE_PEERS[kind]] for part in edge_sources(manifests)}
    minio = of_kind(manifests, "NetworkPolicy")[f"{RELEASE}-minio-clients"]["spec"]["ingress"][0]
    assert EDGE_PEERS["ingress"] in minio["from"]
    assert EDGE_PEERS["gateway"] not in minio["from"]


def test_the_gateway_data_plane_is_configurable(render, helm):
    """Istio-style: a Deployment per Gateway in the release's namespace, found by the
    Gateway API label. Given selectors replace the default, not merge into it."""
    istio = {"podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "studio"}}}
    manifests = render({"networkPolicy": {"gateway": istio}})
    assert list(edge_sources(manifests).values()) == [[istio]] * 3
    # The Ingress controller's selectors are no default to fall back on.
    chart = helm.Chart.load(str(CHART))
    values = {
        "ingress": {"kind": "ingress"},
        "networkPolicy": {"ingressController": {"namespaceSelector": None, "podSelector": None}},
    }
    with pytest.raises(helm.HelmError, match=r"networkPolicy\.ingressController needs a"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_backends_accept_only_their_clients(render):
    policies = of_kind(render("default"), "NetworkPolicy")
    allowed = {
        "nats": ({"api", "worker", "operator"}, 4222),
        "postgres": ({"api", "worker", "migration"}, 5432),
        "redis": ({"api", "worker"}, 6379),
    }
    for backend, (roles, port) in allowed.items():
        (rule,) = policies[f"{RELEASE}-{backend}-clients"]["spec"]["ingress"]
        expressions = rule["from"][0]["podSelector"]["matchExpressions"]
        role_values = next(e["values"] for e in expressions if e["key"] == "studio.anime/role")
        assert set(role_values) == roles, backend
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]


def test_network_policies_can_be_turned_off(render):
    assert of_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy") == {}


def test_values_files_exist():
    for path in VALUES.values():
        assert path is None or Path(path).is_file()


def test_live_update_is_tilt_only(render, route_table):
    """Tilt sets liveUpdate: API containers get a writable root and --reload; no
    values file shipped here turns it on."""
    for values in VALUE_SETS:
        assert not load_values(values).get("liveUpdate"), values
    deployments = of_kind(render({"liveUpdate": True}), "Deployment")
    for name in services_of(route_table):
        c = container(deployments[f"{RELEASE}-{name}"])
        assert c["args"][-1] == "--reload"
        assert c["securityContext"]["readOnlyRootFilesystem"] is False
    worker = container(deployments[f"{RELEASE}-transcoder-worker"])
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True


def test_workers_split_long_sources_in_the_cluster_unless_told_not_to(render):
    name = f"{RELEASE}-transcoder-worker"
    worker = container(of_kind(render("default"), "Deployment")[name])
    assert env_of(worker)["TRANSCODER_CHUNKING"]["value"] == "true"
    off = render({"transcoderWorker": {"chunking": False}})
    assert env_of(container(of_kind(off, "Deployment")[name]))["TRANSCODER_CHUNKING"]["value"] == (
        "false"
    )
