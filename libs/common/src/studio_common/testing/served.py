"""A service's app under test, for its suite's conftest::

    catalog_app, client = served_app_fixtures(
        "catalog_app", create_app, settings="catalog_settings"
    )

:func:`migrated_settings` brings the suite's database to the head revision
before the service's settings are made of them; :func:`served_app_fixtures`
makes the app fixture (the app served in-process for the session, with its
real lifespan) and the ``client`` bound to it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from studio_common.migrations import upgrade
from studio_common.testing.plugin import serve_app

__all__ = ["migrated_settings", "served_app_fixtures"]


def migrated_settings(service_dir: Path, service_settings: dict[str, Any]) -> dict[str, Any]:
    """``service_settings``, once the database they name holds the service's
    schema at its head revision (``service_dir`` has the ``alembic.ini``)."""
    upgrade(service_dir, service_settings["database_url"])
    return service_settings


def served_app_fixtures(
    name: str, create_app: Callable[[Any], FastAPI], *, settings: str
) -> tuple[Any, Any]:
    """Two fixtures for a conftest to bind: ``name``, the app ``create_app``
    makes of the fixture ``settings``, served for the session; and ``client``,
    the HTTP client bound to that app."""

    async def app_fixture(**fixtures: Any) -> AsyncIterator[FastAPI]:
        app = create_app(fixtures[settings])
        async with serve_app(app) as client:
            app.state.test_client = client
            yield app

    def client_fixture(**fixtures: Any) -> httpx.AsyncClient:
        client: httpx.AsyncClient = fixtures[name].state.test_client
        return client

    # pytest reads what a fixture depends on off its signature; the names are the caller's.
    app_fixture.__signature__ = _needs(settings)  # type: ignore[attr-defined]
    client_fixture.__signature__ = _needs(name)  # type: ignore[attr-defined]
    return (
        pytest.fixture(scope="session", name=name)(app_fixture),
        pytest.fixture(name="client")(client_fixture),
    )


def _needs(fixture: str) -> inspect.Signature:
    return inspect.Signature([inspect.Parameter(fixture, inspect.Parameter.KEYWORD_ONLY)])
