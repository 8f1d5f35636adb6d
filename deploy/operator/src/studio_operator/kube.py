"""The one thing the operator changes in the cluster: a Deployment's scale.

Only the ``deployments/scale`` subresource is read and patched, so the RBAC
Role can be limited to exactly that (see the chart's operator-rbac.yaml).
"""

from __future__ import annotations

from typing import Any, Protocol

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

FIELD_MANAGER = "studio-operator"


class TargetNotFound(LookupError):
    """The target Deployment does not exist."""


class ScaleClient(Protocol):
    async def get_replicas(self, namespace: str, name: str) -> int: ...

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None: ...


class KubernetesScaler:
    def __init__(self, api_client: Any) -> None:
        self._api_client = api_client
        self._apps = client.AppsV1Api(api_client)

    @classmethod
    async def connect(cls) -> KubernetesScaler:
        """In-cluster credentials (the operator's ServiceAccount), else the kubeconfig."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except ConfigException:
            await config.load_kube_config()
        return cls(client.ApiClient())

    async def get_replicas(self, namespace: str, name: str) -> int:
        try:
            scale = await self._apps.read_namespaced_deployment_scale(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise TargetNotFound(f"deployment {namespace}/{name} not found") from None
            raise
        return int(scale.spec.replicas or 0)

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        try:
            await self._apps.patch_namespaced_deployment_scale(
                name,
                namespace,
                {"spec": {"replicas": replicas}},
                field_manager=FIELD_MANAGER,
            )
        except ApiException as exc:
            if exc.status == 404:
                raise TargetNotFound(f"deployment {namespace}/{name} not found") from None
            raise

    async def close(self) -> None:
        await self._api_client.close()
