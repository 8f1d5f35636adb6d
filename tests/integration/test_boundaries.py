"""No service imports another service; libs/common imports no service.

The contracts live in the root pyproject ([tool.importlinter]); this runs them
with the test suite so a violation fails `make test` even without the linter step.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
