"""No service imports another service; libs/common imports no service; each
service keeps its layers (routes -> service -> repository -> models).

The contracts live in the root pyproject ([tool.importlinter]); this runs them
with the test suite so a violation fails `make test` even without the linter step.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["catalog", "identity", "media", "transcoder", "playback"]


def test_import_contracts_hold():
    # In a subprocess: import-linter reconfigures logging (disabling existing
    # loggers), which would leak into the tests that run after it.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Services are independent of each other KEPT" in result.stdout
    assert "libs/common imports no service KEPT" in result.stdout
    for service in SERVICES:
        assert f"{service} layers: routes -> service -> repository -> models KEPT" in result.stdout
    assert " 0 broken" in result.stdout


def test_no_service_source_names_another_service():
    # A second, independent look: also catches imports inside strings passed to
    # importlib, which the import graph cannot see.
    offenders = []
    for own in SERVICES:
        for path in (ROOT / "services" / own / "src").rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names = [node.value] if node.value.startswith("studio_") else []
                for name in names:
                    other = name.split(".")[0].removeprefix("studio_")
                    if other in SERVICES and other != own:
                        offenders.append(f"{path.relative_to(ROOT)} → {name}")
    assert offenders == []


# The one shape every service has (docs/conventions.md, "Layout"); `service` is
# a module or, where the logic is several use cases, a package.
LAYOUT = [
    "__main__.py",
    "main.py",
    "config.py",
    "api/__init__.py",
    "subscribers.py",
    "schemas.py",
    "service",
    "repository.py",
    "models.py",
]


def _layers_contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {
        c["containers"][0].removeprefix("studio_"): c
        for c in config["contracts"]
        if c["type"] == "layers"
    }


def test_every_service_has_the_same_layout():
    missing = []
    for service in SERVICES:
        package = ROOT / "services" / service / "src" / f"studio_{service}"
        for part in LAYOUT:
            path = package / part
            if part == "service":
                if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
                    missing.append(f"studio_{service}.service")
            elif not path.is_file():
                missing.append(f"studio_{service}/{part}")
    assert missing == []


def test_every_service_has_a_layers_contract():
    contracts = _layers_contracts()
    assert sorted(contracts) == sorted(SERVICES)
    for service, contract in contracts.items():
        layers = contract["layers"]
        order = [
            next(i for i, layer in enumerate(layers) if name in layer.split(" | "))
            for name in ("api", "subscribers", "service", "repository", "models")
        ]
        api, subscribers, service_layer, repository, models = order
        # Routes and subscribers are one layer of independent siblings: neither imports the other.
        assert api == subscribers, service
        assert api < service_layer < repository < models, service


@pytest.mark.parametrize("service", SERVICES)
def test_a_repository_importing_routes_breaks_the_contract(service, tmp_path):
    # The service's own contract over a copy of its source in which the
    # repository imports the routes: the linter must refuse it.
    source = ROOT / "services" / service / "src" / f"studio_{service}"
    copy = tmp_path / "src" / f"studio_{service}"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    repository = copy / "repository.py"
    repository.write_text(repository.read_text() + f"\nimport studio_{service}.api  # noqa\n")
    contract = _layers_contracts()[service]
    config = tmp_path / "contracts.toml"
    config.write_text(
        "[tool.importlinter]\n"
        f'root_packages = ["studio_{service}"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        f"name = {json.dumps(contract['name'])}\n"
        'type = "layers"\n'
        f"containers = {json.dumps(contract['containers'])}\n"
        f"layers = {json.dumps(contract['layers'])}\n"
    )
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("lint-imports")),
            "--no-cache",
            "--config",
            str(config),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"studio_{service}.repository -> studio_{service}.api" in result.stdout, result.stdout
