"""What a cluster operator needs beyond the manifests being valid: workers that
the scheduler sizes and the kubelet does not evict, busy workers marked,
ServiceAccounts that take cloud identities, metrics the cluster's Prometheus
can find and is let in to scrape."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import CHART, RELEASE, VALUES, load_values, of_kind

WORKER = f"{RELEASE}-transcoder-worker"


def worker_values(values: str) -> dict[str, Any]:
    import yaml

    base = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["transcoderWorker"]
    return {**base, **load_values(values).get("transcoderWorker", {})}


@pytest.mark.parametrize("values", list(VALUES))
def test_workers_request_their_scratch_as_ephemeral_storage(render, values):
    w = worker_values(values)
    deployment = of_kind(render(values), "Deployment")[WORKER]
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    scratch = int(w["scratchSizeLimit"].removesuffix("Gi"))
    expected = f"{scratch + w['ephemeralStorageMarginGi']}Gi"
    assert c["resources"]["requests"]["ephemeral-storage"] == expected
    assert c["resources"]["limits"]["ephemeral-storage"] == expected
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert tmp["emptyDir"]["sizeLimit"] == w["scratchSizeLimit"]
    # CPU and memory are still the values' own.
    assert c["resources"]["requests"]["memory"] == w["resources"]["requests"]["memory"]


def test_a_scratch_size_must_be_whole_gi(helm):
    with pytest.raises(Exception, match="scratchSizeLimit"):
        helm.Chart.load(str(CHART)).render(
            {"transcoderWorker": {"scratchSizeLimit": "500Mi"}}, name=RELEASE, namespace=RELEASE
        )


def test_the_autoscaler_marks_busy_workers_from_their_metrics(render):
    manifests = render("default")
    autoscaler = of_kind(manifests, "TranscoderAutoscaler")[WORKER]
    assert autoscaler["spec"]["metricsPort"] == 9104
    policies = of_kind(manifests, "NetworkPolicy")
    # The operator may reach the workers' metrics port, and the workers let it in.
    egress = policies[f"{RELEASE}-operator-egress"]["spec"]["egress"]
    assert any(
        rule["to"][0]
        .get("podSelector", {})
        .get("matchLabels", {})
        .get("app.kubernetes.io/component")
        == "transcoder-worker"
        and rule["ports"] == [{"port": 9104, "protocol": "TCP"}]
        for rule in egress
    )
    (inbound,) = policies[f"{RELEASE}-transcoder-worker-metrics"]["spec"]["ingress"]
    components = [
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        for peer in inbound["from"]
    ]
    assert "operator" in components


def test_service_accounts_take_annotations(render):
    irsa = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/studio"}
    gke = {"iam.gke.io/gcp-service-account": "media@project.iam.gserviceaccount.com"}
    manifests = render(
        {
            "serviceAccount": {"annotations": irsa},
            "services": {"media": {"serviceAccountAnnotations": gke}},
        }
    )
    accounts = of_kind(manifests, "ServiceAccount")
    assert accounts[f"{RELEASE}-media"]["metadata"]["annotations"] == {**irsa, **gke}
    for name in ("catalog", "transcoder-worker", "operator", "player", "hls-edge"):
        assert accounts[f"{RELEASE}-{name}"]["metadata"]["annotations"] == irsa, name
    # None by default.
    for account in of_kind(render("default"), "ServiceAccount").values():
        assert "annotations" not in account["metadata"] or not any(
            k.startswith(("eks.", "iam.gke")) for k in account["metadata"]["annotations"]
        )


def test_monitors_render_when_asked_and_select_what_serves_metrics(render, route_table, kinds):
    assert kinds(render("default"), "ServiceMonitor") == {}  # no CRDs offline, auto
    manifests = render(
        {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}}
    )
    monitor = of_kind(manifests, "ServiceMonitor")[f"{RELEASE}-services"]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    (expression,) = [
        e
        for e in monitor["spec"]["selector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    ]
    assert set(expression["values"]) == set(route_table["services"])
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    services = of_kind(manifests, "Service")
    for name in route_table["services"]:
        assert services[f"{RELEASE}-{name}"]["spec"]["ports"][0]["name"] == "http"
    pods = of_kind(manifests, "PodMonitor")[WORKER]
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    worker = of_kind(manifests, "Deployment")[WORKER]["spec"]["template"]["spec"]["containers"][0]
    assert [p["name"] for p in worker["ports"]] == ["metrics"]
    assert kinds(render({"metrics": {"serviceMonitor": {"enabled": False}}}), "PodMonitor") == {}


def test_the_scraper_is_let_in(render, route_table):
    policies = of_kind(render("default"), "NetworkPolicy")
    scraper = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    (apis,) = policies[f"{RELEASE}-apis-from-scraper"]["spec"]["ingress"]
    assert apis["from"] == [scraper]
    assert {p["port"] for p in apis["ports"]} == {
        s["port"] for s in route_table["services"].values()
    }
    (workers,) = policies[f"{RELEASE}-transcoder-worker-metrics"]["spec"]["ingress"]
    assert scraper in workers["from"]
    assert workers["ports"] == [{"port": 9104, "protocol": "TCP"}]
    # scraper: null lets none in.
    policies = of_kind(render({"metrics": {"scraper": None}}), "NetworkPolicy")
    assert f"{RELEASE}-apis-from-scraper" not in policies


def _studio_images(manifests: list[dict[str, Any]]) -> dict[str, str]:
    """component name -> image of every container running one of our images."""
    found: dict[str, str] = {}
    for m in manifests:
        spec = m.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {})
        for c in pod.get("containers", []) if isinstance(pod, dict) else []:
            if "/studio-" in c["image"]:
                name = c["image"].rsplit("/studio-", 1)[1].split(":")[0].split("@")[0]
                found[name] = c["image"]
    return found


def test_images_anyone_can_pull_tagged_with_the_app_version(render, route_table):
    import yaml

    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"]
    images = _studio_images(render("default"))
    assert set(images) == {*route_table["services"], "operator", "player"}
    for name, image in images.items():
        assert image == f"ghcr.io/studio-anime/studio-{name}:{app_version}"
    # kind and Tilt: the locally built images.
    for name, image in _studio_images(render("dev")).items():
        assert image == f"studio/studio-{name}:dev"


def test_digests_pin_images_and_a_component_may_override(render):
    digest = "sha256:" + "ab" * 32
    manifests = render(
        {
            "image": {
                "registry": "registry.example:5000",
                "repository": "team/anime",
                "tag": "1.2.3",
            },
            "operator": {"image": {"digest": digest}},
            "player": {"image": {"repository": "other/player", "tag": "x"}},
        }
    )
    images = _studio_images(manifests)
    assert images["catalog"] == "registry.example:5000/team/anime/studio-catalog:1.2.3"
    assert images["operator"] == f"registry.example:5000/team/anime/studio-operator:1.2.3@{digest}"
    player = of_kind(manifests, "Deployment")[f"{RELEASE}-player"]
    assert player["spec"]["template"]["spec"]["containers"][0]["image"] == "other/player:x"
    pinned = _studio_images(render({"image": {"digests": {"media": digest}}}))
    assert pinned["media"].endswith(f"@{digest}")
    assert "@" not in pinned["catalog"]


def test_a_malformed_digest_is_refused(helm):
    with pytest.raises(Exception, match="digests"):
        helm.Chart.load(str(CHART)).render(
            {"image": {"digests": {"media": "latest"}}}, name=RELEASE, namespace=RELEASE
        )


def test_production_nats_is_a_three_node_jetstream_cluster(render):
    manifests = render("production")
    nats = of_kind(manifests, "StatefulSet")[f"{RELEASE}-nats"]
    spec = nats["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    (c,) = spec["template"]["spec"]["containers"]
    args = c["args"]
    assert "--server_name=$(POD_NAME)" in args
    assert f"--cluster_name={RELEASE}-nats" in args
    (routes,) = [a.removeprefix("--routes=") for a in args if a.startswith("--routes=")]
    assert routes.split(",") == [
        f"nats://{RELEASE}-nats-{i}.{RELEASE}-nats-headless.{RELEASE}.svc.cluster.local:6222"
        for i in range(3)
    ]
    headless = of_kind(manifests, "Service")[f"{RELEASE}-nats-headless"]["spec"]
    assert headless["publishNotReadyAddresses"] is True
    assert 6222 in [p["port"] for p in headless["ports"]]
    pdb = of_kind(manifests, "PodDisruptionBudget")[f"{RELEASE}-nats"]["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"] == spec["selector"]
    # The services keep the stream on all three; the servers may route to each other.
    assert (
        of_kind(manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]["STUDIO_NATS_STREAM_REPLICAS"]
        == "3"
    )
    cluster = of_kind(manifests, "NetworkPolicy")[f"{RELEASE}-nats-cluster"]["spec"]
    assert cluster["ingress"][0]["ports"] == [{"port": 6222, "protocol": "TCP"}]


def test_one_nats_server_by_default_and_replicas_checked(render, helm):
    manifests = render("default")
    nats = of_kind(manifests, "StatefulSet")[f"{RELEASE}-nats"]
    assert nats["spec"]["replicas"] == 1
    assert f"{RELEASE}-nats" not in of_kind(manifests, "PodDisruptionBudget")
    assert (
        of_kind(manifests, "ConfigMap")[f"{RELEASE}-config"]["data"]["STUDIO_NATS_STREAM_REPLICAS"]
        == "1"
    )
    with pytest.raises(Exception, match="streamReplicas"):
        helm.Chart.load(str(CHART)).render(
            {"nats": {"streamReplicas": 3}}, name=RELEASE, namespace=RELEASE
        )


def test_keda_scales_the_workers_instead_of_the_operator(render):
    manifests = render(
        {"operator": {"enabled": False}, "transcoderWorker": {"autoscaler": {"engine": "keda"}}}
    )
    assert of_kind(manifests, "TranscoderAutoscaler") == {}
    assert f"{RELEASE}-operator" not in of_kind(manifests, "Deployment")
    worker = of_kind(manifests, "Deployment")[WORKER]
    assert "replicas" not in worker["spec"], "KEDA's HPA owns them"
    scaled = of_kind(manifests, "ScaledObject")[WORKER]["spec"]
    a = worker_values("default")["autoscaler"]
    assert scaled["scaleTargetRef"]["name"] == WORKER
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (
        a["minReplicas"],
        a["maxReplicas"],
    )
    assert scaled["cooldownPeriod"] == a["scaleDownCooldownSeconds"]
    consumers = [t["metadata"]["consumer"] for t in scaled["triggers"]]
    assert consumers == [a["consumer"], *a["additionalConsumers"]]
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "nats-jetstream"
        meta = trigger["metadata"]
        assert meta["stream"] == a["stream"]
        assert meta["lagThreshold"] == str(a["jobsPerReplica"])
        assert meta["natsServerMonitoringEndpoint"] == (
            f"{RELEASE}-nats-headless.{RELEASE}.svc.cluster.local:8222"
        )
    # KEDA's operator may read NATS's monitoring port.
    rules = of_kind(manifests, "NetworkPolicy")[f"{RELEASE}-nats-clients"]["spec"]["ingress"]
    assert any(rule["ports"] == [{"port": 8222, "protocol": "TCP"}] for rule in rules)


def test_the_operator_stays_the_default(render):
    manifests = render("default")
    assert of_kind(manifests, "ScaledObject") == {}
    assert WORKER in of_kind(manifests, "TranscoderAutoscaler")
