"""No service imports another service; libs/common imports no service.

The contracts live in the root pyproject ([tool.importlinter]); this runs them
with the test suite so a violation fails `make test` even without the linter step.
"""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["catalog", "identity", "media", "transcoder", "playback"]


def test_import_contracts_hold(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(no_cache=True) == 0


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
