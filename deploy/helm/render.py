"""Lint, render and validate the chart offline, without a helm binary.

    uv run python deploy/helm/render.py                       # lint + validate default, dev, production
    uv run python deploy/helm/render.py -f deploy/helm/values-dev.yaml --print   # like `helm template`

Helm's own library does the linting and rendering (PyPI helm-python-sdk);
kubernetes-validate checks every manifest against the schemas of one pinned
Kubernetes version, the TranscoderAutoscaler against its CRD, and the other
projects' kinds the chart may render (Gateway API, Prometheus Operator, KEDA)
against schemas/, the fields of their CRDs the chart uses. Without -f, every
values file: the chart's defaults and deploy/helm/values-*.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE / "studio"
DEFAULT_VALUES: list[Path | None] = [None, *sorted(HERE.glob("values-*.yaml"))]
SCHEMAS = HERE / "schemas"
KUBERNETES_VERSION = "1.33.0"


def render(values_file: Path | None, release: str, namespace: str) -> list[dict[str, Any]]:
    import helm_python

    values = {} if values_file is None else yaml.safe_load(values_file.read_text("utf-8"))
    files = helm_python.Chart.load(str(CHART)).render(
        values, name=release, namespace=namespace, is_install=True
    )
    docs: list[dict[str, Any]] = []
    for path in sorted(files):
        if path.endswith((".yaml", ".yml")):
            docs += [d for d in yaml.safe_load_all(files[path]) if d]
    return docs


def lint(values_file: Path | None, kube_version: str) -> list[str]:
    import helm_python

    values = None if values_file is None else yaml.safe_load(values_file.read_text("utf-8"))
    report = helm_python.lint(str(CHART), values, strict=True, kube_version=f"v{kube_version}")
    return list(report["errors"]) + [
        f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2
    ]


def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text("utf-8")) for p in sorted((CHART / "crds").glob("*.yaml"))]


def addon_schema(doc: dict[str, Any]) -> dict[str, Any] | None:
    """schemas/<group>_<version>_<Kind>.json for a kind from outside Kubernetes."""
    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
    path = SCHEMAS / f"{group}_{version}_{doc.get('kind')}.json"
    if not group or not path.is_file():
        return None
    schema: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return schema


def _json_schema(node: Any) -> Any:
    if isinstance(node, dict):
        node = dict(node)
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        return {k: _json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    return node


def validate(docs: list[dict[str, Any]], kube_version: str) -> list[str]:
    custom = {
        (f"{c['spec']['group']}/{v['name']}", c["spec"]["names"]["kind"]): _json_schema(
            v["schema"]["openAPIV3Schema"]
        )
        for c in crds()
        for v in c["spec"]["versions"]
    }
    problems: list[str] = []
    for doc in [*crds(), *docs]:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        schema = custom.get((doc["apiVersion"], doc["kind"])) or addon_schema(doc)
        try:
            if schema is not None:
                jsonschema.validate(doc, schema)
            else:
                kubernetes_validate.validate(doc, kube_version, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            problems.append(f"{where}: {exc.message} at {list(exc.path)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--values", type=Path, action="append", help="a values file")
    parser.add_argument("--release", default="studio")
    parser.add_argument("--namespace", default="studio")
    parser.add_argument("--kube-version", default=KUBERNETES_VERSION)
    parser.add_argument("--print", action="store_true", help="print the manifests and stop")
    args = parser.parse_args(argv)
    value_files: list[Path | None] = list(args.values or DEFAULT_VALUES)

    if args.print:
        docs = [d for f in value_files for d in render(f, args.release, args.namespace)]
        sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
        return 0

    failed = False
    for values_file in value_files:
        label = "values.yaml" if values_file is None else values_file.name
        problems = lint(values_file, args.kube_version)
        docs = render(values_file, args.release, args.namespace)
        problems += validate(docs, args.kube_version)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(
            f"{label}: lint, {len(docs)} manifests valid for Kubernetes {args.kube_version}: {status}"
        )
        for problem in problems:
            print(f"  {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
