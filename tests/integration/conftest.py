"""Fixtures shared by the cross-service tests."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from studio_common.testing.infra import scratch_database


@pytest.fixture
async def own_database(pg_admin_url: str) -> AsyncIterator[str]:
    """A database of one test: identity or catalog apps other tests left running
    share the session database's outbox tables, and their relays would publish
    this test's events on their own streams."""
    async with scratch_database(pg_admin_url, "studio_own") as url:
        yield url


@pytest.fixture
def own_settings(
    service_settings: dict[str, Any], event_namespaces: Any, own_database: str
) -> dict[str, Any]:
    """Settings for services run against each other: this test's own database and
    JetStream namespace (``event_subject_root``, ``event_stream``)."""
    ns = event_namespaces.new()
    return {**service_settings, **event_namespaces.settings(ns), "database_url": own_database}


@pytest.fixture(scope="session")
def create_service_app() -> Callable[..., Any]:
    """``create_service_app(name, **settings)``: the named service's app, built from the
    settings class its config module adds to ServiceSettings."""

    def create(name: str, **settings: Any) -> Any:
        config = importlib.import_module(f"studio_{name}.config")
        main = importlib.import_module(f"studio_{name}.main")
        settings_cls = next(
            getattr(config, attr)
            for attr in dir(config)
            if attr.endswith("Settings") and attr != "ServiceSettings"
        )
        return main.create_app(settings_cls(**settings))

    return create
