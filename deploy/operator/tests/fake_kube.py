"""A fake Kubernetes API server, just enough for the operator: discovery, the
TranscoderAutoscalers (list, watch, get, merge patch, status subresource), the
worker Deployment's scale and Events, with Kubernetes' deletion rules (an object
with finalizers stays, Terminating, until the last one is removed).

It serves plain HTTP on 127.0.0.1 and records what the clients did: every
finalizer list ever stored, every scale and status patch. Served from the
test's event loop; the operator runs in a thread of its own (real kopf, real
kubernetes_asyncio clients, through a kubeconfig that points here).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from studio_operator.settings import GROUP, KIND, PLURAL, VERSION

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class PatchConflict(ValueError):
    """A JSON Patch `test` failed (the object changed meanwhile)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902: add, remove, replace and test, which is what kopf sends."""
    doc = copy.deepcopy(target)
    for op in operations:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]
        ]
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = (len(node) if last == "-" else int(last)) if isinstance(node, list) else last
        if op["op"] == "test":
            if node[key] != op["value"]:
                raise PatchConflict(op["path"])
        elif op["op"] == "remove":
            del node[key]
        elif op["op"] == "add" and isinstance(node, list):
            node.insert(key, copy.deepcopy(op["value"]))
        elif op["op"] in {"add", "replace"}:
            node[key] = copy.deepcopy(op["value"])
        else:
            raise ValueError(f"unsupported op {op['op']}")
    return doc


def _resource(
    name: str,
    singular: str,
    kind: str,
    verbs: list[str],
    *,
    namespaced: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """One entry of an APIResourceList, as discovery reads it."""
    return {
        "name": name,
        "singularName": singular,
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
        **extra,
    }


def _resource_list(group_version: str, *resources: dict[str, Any]) -> web.Response:
    return web.json_response(
        {"kind": "APIResourceList", "groupVersion": group_version, "resources": list(resources)}
    )


@dataclass
class ScalePatch:
    at: float
    replicas: int


@dataclass
class FakeKube:
    namespace: str = "studio"
    deployment: str = "studio-transcoder-worker"
    replicas: int = 0
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (name, finalizers) for every write that stored finalizers on an autoscaler.
    finalizers_stored: list[tuple[str, list[str]]] = field(default_factory=list)
    scale_patches: list[ScalePatch] = field(default_factory=list)
    status_patches: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    # Requests nothing here answers (an unexpected call shows up in a failure).
    unknown: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    _rv: int = 1
    _history: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    url: str = ""

    # -- the test's side -------------------------------------------------------

    async def create(
        self, name: str, spec: dict[str, Any], *, finalizers: list[str] | None = None
    ) -> dict[str, Any]:
        obj = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creationTimestamp": "2026-12-06T12:00:00Z",
            },
            "spec": copy.deepcopy(spec),
        }
        if finalizers:
            obj["metadata"]["finalizers"] = list(finalizers)
        await self._store(name, obj, "ADDED")
        return obj

    async def delete(self, name: str) -> None:
        obj = self.objects.get(name)
        if obj is None:
            return
        if obj["metadata"].get("finalizers"):
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = "2026-12-06T12:30:00Z"
            await self._store(name, obj, "MODIFIED")
        else:
            await self._remove(name)

    def finalizers(self, name: str) -> list[str] | None:
        obj = self.objects.get(name)
        return None if obj is None else list(obj["metadata"].get("finalizers") or [])

    # -- the server ------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api", self._core_versions)
        app.router.add_get("/api/v1", self._core_resources)
        app.router.add_get("/apis", self._groups)
        app.router.add_get(f"/apis/{GROUP}/{VERSION}", self._studio_resources)
        app.router.add_get("/apis/apps/v1", self._apps_resources)
        app.router.add_get("/apis/apiextensions.k8s.io/v1", self._crd_resources)
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{PLURAL}"
        app.router.add_get(base, self._list_or_watch)
        app.router.add_get(base + "/{name}", self._get)
        app.router.add_patch(base + "/{name}", self._patch)
        app.router.add_patch(base + "/{name}/status", self._patch_status)
        scale = "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"
        app.router.add_get(scale, self._get_scale)
        app.router.add_patch(scale, self._patch_scale)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods)
        app.router.add_post("/api/v1/namespaces/{ns}/events", self._event)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [
                        {
                            "name": "fake",
                            "context": {
                                "cluster": "fake",
                                "user": "fake",
                                "namespace": self.namespace,
                            },
                        }
                    ],
                    "current-context": "fake",
                }
            ),
            encoding="utf-8",
        )
        return path

    # -- storage ---------------------------------------------------------------

    async def _store(self, name: str, obj: dict[str, Any], kind: str) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        finalizers = obj["metadata"].get("finalizers") or []
        if finalizers:
            self.finalizers_stored.append((name, list(finalizers)))
        if obj["metadata"].get("deletionTimestamp") and not finalizers:
            self.objects[name] = obj
            await self._remove(name)
            return
        self.objects[name] = obj
        await self._emit(kind, obj)

    async def _remove(self, name: str) -> None:
        obj = self.objects.pop(name)
        self._rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        await self._emit("DELETED", obj)

    async def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        async with self._changed:
            self._history.append((self._rv, {"type": kind, "object": copy.deepcopy(obj)}))
            self._changed.notify_all()

    # -- handlers --------------------------------------------------------------

    async def _core_versions(self, _: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    async def _core_resources(self, _: web.Request) -> web.Response:
        return _resource_list(
            "v1",
            _resource("events", "event", "Event", ["create"]),
            _resource("pods", "pod", "Pod", ["list"]),
            # kopf finds its way by these even when it watches neither.
            _resource(
                "namespaces", "namespace", "Namespace", ["get", "list", "watch"], namespaced=False
            ),
        )

    async def _groups(self, _: web.Request) -> web.Response:
        def group(name: str, version: str) -> dict[str, Any]:
            gv = {"groupVersion": f"{name}/{version}", "version": version}
            return {"name": name, "versions": [gv], "preferredVersion": gv}

        return web.json_response(
            {
                "kind": "APIGroupList",
                "groups": [
                    group(GROUP, VERSION),
                    group("apps", "v1"),
                    group("apiextensions.k8s.io", "v1"),
                ],
            }
        )

    async def _studio_resources(self, _: web.Request) -> web.Response:
        verbs = ["delete", "get", "list", "patch", "watch"]
        return _resource_list(
            f"{GROUP}/{VERSION}",
            _resource(PLURAL, "transcoderautoscaler", KIND, verbs, shortNames=["tas"]),
            _resource(f"{PLURAL}/status", "", KIND, ["get", "patch"]),
        )

    async def _apps_resources(self, _: web.Request) -> web.Response:
        return _resource_list(
            "apps/v1",
            _resource("deployments", "deployment", "Deployment", []),
            _resource(
                "deployments/scale",
                "",
                "Scale",
                ["get", "patch"],
                group="autoscaling",
                version="v1",
            ),
        )

    async def _crd_resources(self, _: web.Request) -> web.Response:
        return _resource_list(
            "apiextensions.k8s.io/v1",
            _resource(
                "customresourcedefinitions",
                "customresourcedefinition",
                "CustomResourceDefinition",
                ["get", "list", "watch"],
                namespaced=False,
            ),
        )

    async def _list_or_watch(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") in {"true", "1"}:
            return await self._watch(request)
        return web.json_response(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": f"{KIND}List",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": [copy.deepcopy(o) for o in self.objects.values()],
            }
        )

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or self._rv)
        timeout = float(request.query.get("timeoutSeconds") or 60)
        deadline = time.monotonic() + min(timeout, 60)
        reply = web.StreamResponse(headers={"Content-Type": "application/json"})
        await reply.prepare(request)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while (left := deadline - time.monotonic()) > 0:
                async with self._changed:
                    pending = [e for rv, e in self._history if rv > since]
                    if not pending:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), timeout=min(1.0, left))
                        continue
                for event in pending:
                    await reply.write(json.dumps(event).encode() + b"\n")
                since = int(pending[-1]["object"]["metadata"]["resourceVersion"])
        return reply

    def _found(self, request: web.Request) -> dict[str, Any] | None:
        return self.objects.get(request.match_info["name"])

    @staticmethod
    def _not_found(name: str) -> web.Response:
        return web.json_response(
            {
                "kind": "Status",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
                "message": f"{PLURAL} {name!r} not found",
            },
            status=404,
        )

    async def _get(self, request: web.Request) -> web.Response:
        obj = self._found(request)
        if obj is None:
            return self._not_found(request.match_info["name"])
        return web.json_response(obj)

    async def _patched(
        self, request: web.Request, obj: dict[str, Any]
    ) -> dict[str, Any] | web.Response:
        # Custom resources take a merge patch (a dict) or a JSON Patch (a list),
        # never a strategic merge patch: anything else is refused, as the API
        # server does.
        content_type = request.headers.get("Content-Type", "")
        body = await request.json()
        if content_type.startswith(MERGE_PATCH) and isinstance(body, dict):
            return merge_patch(obj, body)
        if content_type.startswith(JSON_PATCH) and isinstance(body, list):
            try:
                return json_patch(obj, body)
            except (PatchConflict, KeyError, IndexError) as exc:
                return web.json_response(
                    {"kind": "Status", "code": 422, "message": f"patch failed: {exc}"},
                    status=422,
                )
        self.rejected.append(f"{request.method} {request.path} as {content_type}")
        return web.json_response(
            {"kind": "Status", "code": 415, "message": f"unsupported {content_type}"},
            status=415,
        )

    async def _patch_of(
        self, request: web.Request
    ) -> tuple[str, dict[str, Any], dict[str, Any]] | web.Response:
        """The object a PATCH names, and what it would be patched: or the error answer."""
        name = request.match_info["name"]
        obj = self._found(request)
        if obj is None:
            return self._not_found(name)
        patched = await self._patched(request, obj)
        if isinstance(patched, web.Response):
            return patched
        return name, obj, patched

    async def _patch(self, request: web.Request) -> web.Response:
        found = await self._patch_of(request)
        if isinstance(found, web.Response):
            return found
        name, obj, updated = found
        # The status goes through its subresource only.
        updated["status"] = copy.deepcopy(obj.get("status"))
        if updated["status"] is None:
            del updated["status"]
        await self._store(name, updated, "MODIFIED")
        return web.json_response(self.objects.get(name, updated))

    async def _patch_status(self, request: web.Request) -> web.Response:
        found = await self._patch_of(request)
        if isinstance(found, web.Response):
            return found
        name, obj, patched = found
        status = patched.get("status") or {}
        self.status_patches.append((time.monotonic(), name, copy.deepcopy(status)))
        # Only the status changes through this subresource.
        updated = copy.deepcopy(obj)
        updated["status"] = status
        await self._store(name, updated, "MODIFIED")
        return web.json_response(updated)

    def _scale(self) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": self.deployment, "namespace": self.namespace},
            "spec": {"replicas": self.replicas},
            "status": {"replicas": self.replicas, "selector": ""},
        }

    async def _get_scale(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != self.deployment:
            return self._not_found(request.match_info["name"])
        return web.json_response(self._scale())

    async def _patch_scale(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != self.deployment:
            return self._not_found(request.match_info["name"])
        body = await request.json()
        self.replicas = int(body["spec"]["replicas"])
        self.scale_patches.append(ScalePatch(time.monotonic(), self.replicas))
        return web.json_response(self._scale())

    async def _pods(self, _: web.Request) -> web.Response:
        return web.json_response({"kind": "PodList", "metadata": {}, "items": []})

    async def _event(self, request: web.Request) -> web.Response:
        return web.json_response(await request.json(), status=201)

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path_qs}")
        return web.json_response({"kind": "Status", "code": 404}, status=404)
