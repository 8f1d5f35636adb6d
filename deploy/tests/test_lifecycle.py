"""helm uninstall, tilt down, namespace deletion, rendered: the order Helm deletes
the chart's objects in, played against a model of the namespace with
Kubernetes' finalizer rules. The autoscalers carry the finalizers the operator's
own kopf handlers require (none: studio_operator.handlers), so whatever deletes
them, in whatever order, nothing is left Terminating; the same model with kopf's
finalizer shows the hang this avoids."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio_operator import handlers

from .conftest import RELEASE, VALUES

KOPF_FINALIZER = kopf.OperatorSettings().persistence.finalizer


def operator_finalizers() -> list[str]:
    """What the running operator puts on a TranscoderAutoscaler: kopf adds its
    finalizer when any handler for the resource requires one (timers, daemons,
    mandatory deletion handlers)."""
    registry = kopf.get_default_registry()
    every = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
        *registry._spawning.get_all_handlers(),
        *registry._changing.get_all_handlers(),
    ]
    assert handlers.autoscalers in [h.fn for h in every]
    return [KOPF_FINALIZER] if any(getattr(h, "requires_finalizer", None) for h in every) else []


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

    def __init__(self, manifests: list[dict[str, Any]], finalizers: list[str]) -> None:
        self.live = {(m["kind"], m["metadata"]["name"]) for m in manifests if not hooks_of(m)}
        self.autoscalers: dict[str, dict[str, Any]] = {
            name: {"finalizers": list(finalizers), "deleting": False}
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


def uninstall(manifests: list[dict[str, Any]], finalizers: list[str]) -> Cluster:
    cluster = Cluster(manifests, finalizers)
    for step, m in uninstall_steps(manifests):
        if step == "delete":
            cluster.delete(m["kind"], m["metadata"]["name"])
    return cluster


def test_the_operator_needs_no_finalizer():
    assert operator_finalizers() == []


@pytest.mark.parametrize("values", list(VALUES))
def test_uninstall_leaves_nothing_terminating(render, values):
    manifests = render(values)
    cluster = uninstall(manifests, operator_finalizers())
    assert cluster.autoscalers == {}
    assert cluster.live == set()


def test_helm_deletes_the_autoscaler_after_the_operator(render):
    """Why no finalizer may be needed: Helm deletes the operator and its Role before
    the custom resource, so a finalizer would never be removed."""
    manifests = render("default")
    order = [(m["kind"], m["metadata"]["name"]) for step, m in uninstall_steps(manifests)]
    autoscaler = order.index(("TranscoderAutoscaler", f"{RELEASE}-transcoder-worker"))
    assert order.index(("Deployment", f"{RELEASE}-operator")) < autoscaler
    assert order.index(("Role", f"{RELEASE}-operator")) < autoscaler
    # The model catches it: with kopf's finalizer the autoscaler would hang.
    cluster = uninstall(manifests, [KOPF_FINALIZER])
    assert set(cluster.autoscalers) == {f"{RELEASE}-transcoder-worker"}
    assert cluster.live == {("TranscoderAutoscaler", f"{RELEASE}-transcoder-worker")}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_deleting_in_any_order_leaves_nothing(render, data):
    """tilt down and `kubectl delete namespace` follow no Helm order."""
    manifests = [m for m in render("dev") if not hooks_of(m)]
    order = data.draw(st.permutations(manifests))
    cluster = Cluster(manifests, operator_finalizers())
    for m in order:
        cluster.delete(m["kind"], m["metadata"]["name"])
    assert cluster.live == set()


@pytest.mark.parametrize("values", list(VALUES))
def test_no_delete_hooks_for_tilt_to_miss(render, values):
    """Tilt applies hooks as plain objects and runs none at `tilt down`: nothing
    about deletion may depend on one."""
    for overrides in (values, {"liveUpdate": True}):
        manifests = render(overrides)
        assert not [m for m in manifests if hooks_of(m) & {"pre-delete", "post-delete"}]
