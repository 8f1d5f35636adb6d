"""helm uninstall, rendered: the order Helm deletes the chart's objects in, and
the operator's delete handling (studio_operator.release, the pre-delete hook)
driven through that order against a fake API with Kubernetes' finalizer rules.
Without the hook the TranscoderAutoscaler stays Terminating; with it, nothing
is left."""

from __future__ import annotations

from typing import Any

import pytest

from studio_operator.release import KOPF_FINALIZER, release

from .conftest import RELEASE, VALUES, of_kind

# Helm's releaseutil.UninstallOrder (pkg/releaseutil/kind_sorter.go); kinds it does
# not list (custom resources) come last, by name.
UNINSTALL_ORDER = [
    "APIService",
    "Ingress",
    "IngressClass",
    "Service",
    "CronJob",
    "Job",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "Deployment",
    "ReplicaSet",
    "ReplicationController",
    "Pod",
    "DaemonSet",
    "RoleBindingList",
    "RoleBinding",
    "RoleList",
    "Role",
    "ClusterRoleBindingList",
    "ClusterRoleBinding",
    "ClusterRoleList",
    "ClusterRole",
    "CustomResourceDefinition",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "StorageClass",
    "ConfigMap",
    "SecretList",
    "Secret",
    "ServiceAccount",
    "PodDisruptionBudget",
    "PodSecurityPolicy",
    "LimitRange",
    "ResourceQuota",
    "NetworkPolicy",
    "Namespace",
    "PriorityClass",
]
# Helm's InstallOrder for the kinds the hooks use (hooks of one weight are sorted so).
HOOK_KIND_ORDER = ["ServiceAccount", "Role", "RoleBinding", "Job"]


def hooks_of(m: dict[str, Any]) -> set[str]:
    value = m["metadata"].get("annotations", {}).get("helm.sh/hook", "")
    return {h.strip() for h in value.split(",") if h.strip()}


def uninstall_steps(manifests: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """What `helm uninstall` does, in order: run the pre-delete hooks (by weight,
    then kind, then name), delete the release's objects (hooks are not part of it)
    in UninstallOrder, run the post-delete hooks."""

    def hook_key(m: dict[str, Any]) -> tuple[int, int, str]:
        weight = int(m["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))
        kind = m["kind"]
        rank = HOOK_KIND_ORDER.index(kind) if kind in HOOK_KIND_ORDER else len(HOOK_KIND_ORDER)
        return weight, rank, m["metadata"]["name"]

    def delete_key(m: dict[str, Any]) -> tuple[int, str, str]:
        kind = m["kind"]
        rank = UNINSTALL_ORDER.index(kind) if kind in UNINSTALL_ORDER else len(UNINSTALL_ORDER)
        return rank, kind, m["metadata"]["name"]

    pre = sorted((m for m in manifests if "pre-delete" in hooks_of(m)), key=hook_key)
    post = sorted((m for m in manifests if "post-delete" in hooks_of(m)), key=hook_key)
    release_objects = sorted((m for m in manifests if not hooks_of(m)), key=delete_key)
    return (
        [("hook", m) for m in pre]
        + [("delete", m) for m in release_objects]
        + [("hook", m) for m in post]
    )


class Cluster:
    """The namespace during an uninstall: which objects exist, the autoscalers'
    finalizers, and whether the operator can still act (its Deployment, Role and
    RoleBinding not yet deleted)."""

    def __init__(self, manifests: list[dict[str, Any]]) -> None:
        self.live = {(m["kind"], m["metadata"]["name"]) for m in manifests if not hooks_of(m)}
        self.autoscalers: dict[str, dict[str, Any]] = {
            name: {"finalizers": [KOPF_FINALIZER], "deleting": False}
            for kind, name in self.live
            if kind == "TranscoderAutoscaler"
        }

    def operator_running(self) -> bool:
        name = f"{RELEASE}-operator"
        return {("Deployment", name), ("Role", name), ("RoleBinding", name)} <= self.live

    def delete(self, kind: str, name: str) -> None:
        self.live.discard((kind, name))
        if kind == "TranscoderAutoscaler" and name in self.autoscalers:
            self.autoscalers[name]["deleting"] = True
            self.live.add((kind, name))  # Terminating until the finalizers are gone
        self.reconcile()

    def reconcile(self) -> None:
        """The operator, while it can, lets go of what is being deleted; an object
        without finalizers is gone."""
        for name, obj in list(self.autoscalers.items()):
            if obj["deleting"] and self.operator_running():
                obj["finalizers"] = [f for f in obj["finalizers"] if f != KOPF_FINALIZER]
            if obj["deleting"] and not obj["finalizers"]:
                del self.autoscalers[name]
                self.live.discard(("TranscoderAutoscaler", name))

    # AutoscalerApi, as the hook's ServiceAccount sees it.
    async def list_names(self, namespace: str) -> list[str]:
        return sorted(self.autoscalers)

    async def delete_autoscaler(self, namespace: str, name: str) -> None:
        self.delete("TranscoderAutoscaler", name)

    async def finalizers(self, namespace: str, name: str) -> list[str] | None:
        obj = self.autoscalers.get(name)
        return None if obj is None else list(obj["finalizers"])

    async def set_finalizers(self, namespace: str, name: str, finalizers: list[str]) -> None:
        self.autoscalers[name]["finalizers"] = finalizers
        self.reconcile()


class HookApi:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.list_names = cluster.list_names
        self.delete = cluster.delete_autoscaler
        self.finalizers = cluster.finalizers
        self.set_finalizers = cluster.set_finalizers


async def uninstall(manifests: list[dict[str, Any]], *, run_hooks: bool = True) -> Cluster:
    cluster = Cluster(manifests)
    for step, m in uninstall_steps(manifests):
        if step == "hook":
            if (
                run_hooks
                and m["kind"] == "Job"
                and m["metadata"]["name"].endswith("operator-release")
            ):
                assert "release" in m["spec"]["template"]["spec"]["containers"][0]["args"]
                await release(HookApi(cluster), "studio", wait_seconds=0)
            continue
        cluster.delete(m["kind"], m["metadata"]["name"])
    return cluster


@pytest.mark.parametrize("values", list(VALUES))
async def test_uninstall_leaves_nothing_terminating(render, values):
    manifests = render(values)
    cluster = await uninstall(manifests)
    assert cluster.autoscalers == {}
    assert cluster.live == set()


async def test_without_the_hook_the_autoscaler_would_hang(render):
    """Why the hook: Helm deletes the operator and its Role before the custom resource."""
    manifests = render("default")
    order = [(m["kind"], m["metadata"]["name"]) for step, m in uninstall_steps(manifests)]
    autoscaler = order.index(("TranscoderAutoscaler", f"{RELEASE}-transcoder-worker"))
    assert order.index(("Deployment", f"{RELEASE}-operator")) < autoscaler
    assert order.index(("Role", f"{RELEASE}-operator")) < autoscaler
    cluster = await uninstall(manifests, run_hooks=False)
    assert set(cluster.autoscalers) == {f"{RELEASE}-transcoder-worker"}


def test_the_hook_runs_first_with_rbac_of_its_own(render):
    manifests = render("default")
    steps = uninstall_steps(manifests)
    hooks = [m for step, m in steps if step == "hook"]
    # Its ServiceAccount, Role and RoleBinding exist before the Job runs.
    assert [(m["kind"], m["metadata"]["name"].removeprefix(f"{RELEASE}-")) for m in hooks] == [
        ("ServiceAccount", "operator-release"),
        ("Role", "operator-release"),
        ("RoleBinding", "operator-release"),
        ("Job", "operator-release"),
    ]
    assert steps[0][0] == "hook"
    assert [s for s, _ in steps[: len(hooks)]] == ["hook"] * len(hooks)
    for m in hooks:
        policy = m["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        assert "before-hook-creation" in policy
        assert "hook-succeeded" in policy
    role = next(m for m in hooks if m["kind"] == "Role")
    (rule,) = role["rules"]
    assert rule["resources"] == ["transcoderautoscalers"]
    assert set(rule["verbs"]) == {"get", "list", "delete", "patch"}
    job = next(m for m in hooks if m["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"{RELEASE}-operator-release"
    assert pod["containers"][0]["image"].rsplit(":", 1)[0].endswith("studio-operator")
    # The network policy that lets the operator reach the API server lets the hook too.
    egress = of_kind(manifests, "NetworkPolicy")[f"{RELEASE}-operator-egress"]["spec"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    for expression in egress["podSelector"]["matchExpressions"]:
        assert labels[expression["key"]] in expression["values"]


def test_no_operator_no_hook(render):
    manifests = render({"operator": {"enabled": False}})
    assert not [m for m in manifests if hooks_of(m) & {"pre-delete", "post-delete"}]


def test_tilt_gets_no_hook_that_would_run_at_tilt_up(render):
    """Tilt applies hooks as plain objects: the release Job must not exist there."""
    manifests = render({"liveUpdate": True})
    assert not [m for m in manifests if "pre-delete" in hooks_of(m)]
