"""Letting go of the TranscoderAutoscalers before the operator goes away.

kopf puts its finalizer on every TranscoderAutoscaler (its timers need one), and
only a running operator removes it. Helm deletes custom resources after
everything else, the operator's Deployment and RBAC included, so an uninstall
would leave them `Terminating` forever and a namespace deletion would hang. The
chart runs ``python -m studio_operator release`` as a pre-delete hook, while the
operator still runs: it deletes every TranscoderAutoscaler of the namespace,
waits for the operator to stop their timers and drop its finalizer, and after
``wait_seconds`` removes kopf's finalizer itself (the operator is down or stuck).
Other controllers' finalizers are left alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from studio_operator.settings import GROUP, PLURAL, VERSION

# kopf's default finalizer (kopf.OperatorSettings().persistence.finalizer).
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


class AutoscalerApi(Protocol):
    async def list_names(self, namespace: str) -> list[str]: ...

    async def delete(self, namespace: str, name: str) -> None: ...

    async def finalizers(self, namespace: str, name: str) -> list[str] | None:
        """The object's finalizers; None once it is gone."""
        ...

    async def set_finalizers(self, namespace: str, name: str, finalizers: list[str]) -> None: ...


@dataclass
class ReleaseReport:
    deleted: list[str] = field(default_factory=list)
    # Released by the operator in time.
    released: list[str] = field(default_factory=list)
    # Whose kopf finalizer this command removed itself.
    forced: list[str] = field(default_factory=list)


async def release(
    api: AutoscalerApi,
    namespace: str,
    *,
    wait_seconds: float = 60.0,
    poll_seconds: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ReleaseReport:
    report = ReleaseReport(deleted=await api.list_names(namespace))
    for name in report.deleted:
        await api.delete(namespace, name)
    waiting = list(report.deleted)
    deadline = clock() + wait_seconds
    while waiting:
        still = [n for n in waiting if await _holds(api, namespace, n)]
        report.released += [n for n in waiting if n not in still]
        waiting = still
        if not waiting or clock() >= deadline:
            break
        await sleep(poll_seconds)
    for name in waiting:
        current = await api.finalizers(namespace, name)
        if current is None:
            report.released.append(name)
            continue
        await api.set_finalizers(namespace, name, [f for f in current if f != KOPF_FINALIZER])
        report.forced.append(name)
    return report


async def _holds(api: AutoscalerApi, namespace: str, name: str) -> bool:
    """Whether kopf's finalizer still holds the object."""
    current = await api.finalizers(namespace, name)
    return current is not None and KOPF_FINALIZER in current


class KubernetesAutoscalers:
    """The TranscoderAutoscalers through the API server (the hook's Role allows
    list, get, delete and patch on them, nothing else)."""

    def __init__(self, api_client: Any) -> None:
        self._api_client = api_client
        self._custom = client.CustomObjectsApi(api_client)

    @classmethod
    async def connect(cls) -> KubernetesAutoscalers:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except ConfigException:
            await config.load_kube_config()
        return cls(client.ApiClient())

    async def list_names(self, namespace: str) -> list[str]:
        found = await self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return sorted(str(item["metadata"]["name"]) for item in found.get("items", []))

    async def delete(self, namespace: str, name: str) -> None:
        try:
            await self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def finalizers(self, namespace: str, name: str) -> list[str] | None:
        try:
            body = await self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return [str(f) for f in body.get("metadata", {}).get("finalizers") or []]

    async def set_finalizers(self, namespace: str, name: str, finalizers: list[str]) -> None:
        try:
            await self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": finalizers}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def close(self) -> None:
        await self._api_client.close()


async def run(namespace: str, wait_seconds: float) -> ReleaseReport:
    api = await KubernetesAutoscalers.connect()
    try:
        return await release(api, namespace, wait_seconds=wait_seconds)
    finally:
        await api.close()
