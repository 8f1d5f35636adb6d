"""What the operator changes in the cluster: a Deployment's scale, the
busy/idle annotations of its pods (studio_operator.busy), and the
TranscoderAutoscalers' status.

Only the ``deployments/scale`` subresource is read and patched, pods are
listed and patched in the operator's namespace, and only the autoscalers'
``status`` subresource is written, so the RBAC Role is limited to exactly that
(the chart's operator.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp  # kopf's own HTTP client
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from studio_operator.busy import WorkerPod, parse_running
from studio_operator.settings import GROUP, PLURAL, VERSION

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

    @property
    def api_client(self) -> Any:
        return self._api_client

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


class KubernetesPods:
    """The worker pods: their selector (from the scale), listing, annotating."""

    def __init__(self, api_client: Any) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)

    async def selector(self, namespace: str, deployment: str) -> str:
        scale = await self._apps.read_namespaced_deployment_scale(deployment, namespace)
        return str(scale.status.selector or "")

    async def list_pods(self, namespace: str, selector: str) -> list[WorkerPod]:
        if not selector:
            return []
        found = await self._core.list_namespaced_pod(namespace, label_selector=selector)
        return [
            WorkerPod(
                name=str(pod.metadata.name),
                ip=pod.status.pod_ip if pod.status else None,
                annotations=dict(pod.metadata.annotations or {}),
                deleting=pod.metadata.deletion_timestamp is not None,
            )
            for pod in found.items
        ]

    async def annotate(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        try:
            await self._core.patch_namespaced_pod(
                name,
                namespace,
                {"metadata": {"annotations": dict(annotations)}},
                field_manager=FIELD_MANAGER,
            )
        except ApiException as exc:
            if exc.status != 404:  # the pod went away meanwhile
                raise


class KubernetesStatuses:
    """The TranscoderAutoscalers' status subresource, merge-patched."""

    def __init__(self, api_client: Any) -> None:
        self._custom = client.CustomObjectsApi(api_client)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        options: dict[str, Any] = {
            "field_manager": FIELD_MANAGER,
            # The client would pick JSON Patch for a dict body, which the API
            # server rejects: a merge patch is what the body is.
            "_content_type": "application/merge-patch+json",
        }
        try:
            await self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)}, **options
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report to
                raise


class HttpRunningReader:
    """A worker's running jobs from its /metrics."""

    def __init__(self, timeout_seconds: float = 2.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def running(self, ip: str, port: int) -> int | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        host = f"[{ip}]" if ":" in ip else ip
        try:
            async with self._session.get(f"http://{host}:{port}/metrics") as reply:
                if reply.status != 200:
                    return None
                return parse_running(await reply.text())
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
