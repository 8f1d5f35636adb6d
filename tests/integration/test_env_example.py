"""`.env.example` documents every setting of every service."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from studio_common.settings import SHARED_PREFIX, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["catalog", "identity", "media", "transcoder", "playback"]


def documented() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    # Set (NAME=...) or mentioned in a comment as NAME=...
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def settings_classes() -> list[type[ServiceSettings]]:
    found = []
    for name in SERVICES:
        module = importlib.import_module(f"studio_{name}.config")
        found += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, ServiceSettings)
            and obj is not ServiceSettings
        ]
    return found


def test_every_shared_setting_is_documented():
    missing = {f"{SHARED_PREFIX}{f}".upper() for f in ServiceSettings.model_fields} - documented()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_service_setting_is_documented():
    names = documented()
    missing = set()
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix") or "").upper()
        for field in cls.model_fields:
            if field in ServiceSettings.model_fields:
                continue
            if f"{prefix}{field}".upper() not in names:
                missing.add(f"{prefix}{field}".upper())
    assert len(settings_classes()) >= len(SERVICES)
    assert not missing, f"add to .env.example: {sorted(missing)}"
